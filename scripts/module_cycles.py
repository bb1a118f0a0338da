#!/usr/bin/env python3
"""Module dependency cycles in the library (src/, not src/bin).

Each file belongs to a module path (src/model/encoder.rs -> model::encoder, src/model/mod.rs
-> model). A file depends on every module it names through `crate::a::b` or `super::x`
(in `use` lines or paths), counted at two depths: between top-level modules (model -> eval)
and between sibling modules inside one top-level module (model::encoder -> model::layers).
Test modules (`#[cfg(test)]` to the end of the file) are left out. Prints each strongly
connected component with more than one module, and exits 1 when there is one.

    python3 scripts/module_cycles.py [SRC]
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)::\{([^}]*)\}")


def module_of(file):
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def references(file, here):
    text = file.read_text()
    text = text.split("#[cfg(test)]")[0]
    text = re.sub(r"//.*", "", text)
    # super:: is relative to the file's parent module (its own module for mod.rs files).
    parent = here if file.stem == "mod" else here[:-1]
    for m in PATH.finditer(text):
        base = [] if m.group(1) == "crate" else parent
        yield base + m.group(2).strip(":").split("::")
    for m in GROUP.finditer(text):
        base = [] if m.group(1) == "crate" else parent
        for item in m.group(2).split(","):
            name = item.strip().split("::")[0]
            if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                yield base + [name]


def main():
    files = [f for f in src.rglob("*.rs") if "bin" not in f.relative_to(src).parts]
    modules = {tuple(module_of(f)) for f in files}
    edges = defaultdict(set)
    for f in files:
        here = module_of(f)
        for target in references(f, here):
            # The longest known module prefix of the path.
            while target and tuple(target) not in modules:
                target = target[:-1]
            if not target or not here:
                continue
            if target[0] != here[0]:
                edges[here[0]].add(target[0])
            elif len(here) > 1 and len(target) > 1 and target[1] != here[1]:
                edges["::".join(here[:2])].add("::".join(target[:2]))
    cycles = strongly_connected(edges)
    for component in cycles:
        print("cycle:", " <-> ".join(sorted(component)))
        for a in sorted(component):
            for b in sorted(edges[a] & component):
                print(f"    {a} -> {b}")
    if not cycles:
        print(f"no module cycles among {len(modules)} modules")
    return 1 if cycles else 0


def strongly_connected(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    nodes = set(edges) | {b for bs in edges.values() for b in bs}

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
