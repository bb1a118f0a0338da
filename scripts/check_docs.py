#!/usr/bin/env python3
"""Checks the documentation against the repository (run by .ci/run):

- every relative link and image in README.md, CONTRIBUTING.md and the Markdown under docs/,
  tests/ and benches/ resolves to a file, and every #anchor to a heading of that file;
- every repository path named in inline code (`experiments/...`, `scripts/...`, `src/...`,
  ...; a bare `name.yaml` is looked up in experiments/, a bare script name anywhere) exists;
- nothing in the repository points at the references beside the checkout (the folder
  `shared` one level up);
- README.md stays a front page: at most 250 lines (the rest belongs in docs/).

Exits 1 and lists each problem as FILE:LINE: what.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = ("experiments/", "scripts/", "src/", "tests/", "benches/", "notebooks/", "results/",
            "docs/", ".ci/")
PLACEHOLDER = re.compile(r"<|>|\*|…|\.\.\.|\bOUT\b|\bDIR\b|\bRUN\b|NNN|yyyy|\$|\s")
README_MAX_LINES = 250
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")


def tracked_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    found, fence = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            found.add(slug(line.split(" ", 1)[1]))
    return found


def expand_braces(token):
    match = re.search(r"\{([^{}]*)\}", token)
    if not match:
        return [token]
    return [alt for option in match.group(1).split(",")
            for alt in expand_braces(token[:match.start()] + option + token[match.end():])]


def markdown_files():
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    for folder in ("docs", "tests", "benches"):
        files += sorted((ROOT / folder).rglob("*.md"))
    return [f for f in files if f.is_file()]


def check_markdown(path, basenames, problems):
    fence = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        where = f"{path.relative_to(ROOT)}:{number}"
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            if not resolved.exists():
                problems.append(f"{where}: link to {target}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{where}: link to {target}: no heading with that anchor")
        for code in CODE.findall(re.sub(r"\]\([^)]*\)", "]", line)):
            token = code.strip().split(" ")[0] if code.strip().startswith(PREFIXES) else code.strip()
            if PLACEHOLDER.search(token) or token.endswith("/") and token.count("/") == 1:
                continue
            for name in expand_braces(token):
                name = name.split("#")[0].split(":")[0].rstrip(".,;")
                if name.startswith(PREFIXES):
                    if not (ROOT / name).exists():
                        problems.append(f"{where}: `{name}` does not exist")
                elif re.fullmatch(r"[\w.-]+\.ya?ml", name):
                    if not any((ROOT / d / name).exists() for d in ("experiments", "experiments/methods")):
                        if name not in basenames:
                            problems.append(f"{where}: spec `{name}` is not in experiments/")
                elif re.fullmatch(r"[\w.-]+\.(sh|py|ipynb)", name) and name not in basenames:
                    problems.append(f"{where}: script `{name}` is not in the repository")


def main():
    files = tracked_files()
    basenames = {f.name for f in files}
    problems = []
    for path in markdown_files():
        check_markdown(path, basenames, problems)
    outside = "../" + "shared"
    for path in files:
        if path.suffix in {".safetensors", ".pth", ".ckpt", ".parquet", ".wav", ".flac", ".svg", ".png"}:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if outside in line:
                problems.append(f"{path.relative_to(ROOT)}:{number}: points outside the repository ({outside})")
    readme_lines = (ROOT / "README.md").read_text().count("\n")
    if readme_lines > README_MAX_LINES:
        problems.append(f"README.md: {readme_lines} lines, more than {README_MAX_LINES}: move reference material to docs/")
    for problem in problems:
        print(problem)
    print(f"checked {len(markdown_files())} Markdown files and {len(files)} files: {len(problems)} problems",
          file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
