#!/usr/bin/env python3
"""Sets every numeric key of a spec, one at a time, to each of a list of values and runs the
`experiment` binary with it; fails if any run panics (Rust's exit code 101) instead of
ending with a spec error or a result.

    scripts/spec_sweep.py [--run] [--timeout S] [--values 0,1,3,1000,0.5] [--binary B] SPEC...

Without --run each override goes through `--print-config` (load and validation only); with
--run it is a whole run of the spec in a temporary output root (use a small spec such as
experiments/smoke.yaml), stopped after --timeout seconds (a timeout is reported, not failed).
Needs PyYAML.
"""
import argparse
import json
import subprocess
import sys
import tempfile

import yaml  # PyYAML (pip install pyyaml)


def numeric_keys(value, prefix=""):
    """Dotted paths of the numeric leaves of a JSON-like tree (sequence items by index)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [prefix]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    return [k for key, v in items for k in numeric_keys(v, f"{prefix}.{key}" if prefix else str(key))]


def resolved(binary, spec):
    """The resolved spec as a tree, from `--print-config`."""
    text = subprocess.run([binary, spec, "--print-config"], check=True, capture_output=True, text=True).stdout
    return yaml.safe_load(text)


def outcome(binary, spec, key, value, run, timeout):
    args = [binary, spec, "--set", f"{key}={value}"]
    with tempfile.TemporaryDirectory() as root:
        args += ["--set", f"output.root={root}"] if run else ["--print-config"]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", ""
    if done.returncode == 101 or "panicked" in done.stderr:
        return "panic", done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    if done.returncode == 0:
        return "ok", ""
    last = done.stderr.strip().splitlines()
    return "error", next((line for line in last if line.startswith("error:")), last[-1] if last else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--run", action="store_true")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--values", default="0,-1,1e30,.nan,99999999999,1,3,1000,0.5")
    parser.add_argument("--binary", default="target/release/experiment")
    args = parser.parse_args()
    counts, panics = {}, []
    for spec in args.specs:
        for key in numeric_keys(resolved(args.binary, spec)):
            if key.startswith("output."):
                continue
            for value in args.values.split(","):
                kind, detail = outcome(args.binary, spec, key, value, args.run, args.timeout)
                counts[kind] = counts.get(kind, 0) + 1
                print(json.dumps({"spec": spec, "set": f"{key}={value}", "outcome": kind, "detail": detail}), flush=True)
                if kind == "panic":
                    panics.append(f"{spec}: --set {key}={value}: {detail}")
    print(json.dumps({"summary": counts}), file=sys.stderr)
    for p in panics:
        print("PANIC", p, file=sys.stderr)
    sys.exit(1 if panics else 0)


if __name__ == "__main__":
    main()
