"""Summarises a GPU check folder (scripts/gpu-check.sh) as Markdown on stdout.

usage: python3 scripts/gpu_summary.py OUT

Reads OUT/results.jsonl, OUT/gpu-memory.csv (if sampled) and OUT/environment.txt. Standard
library only: the GPU machine's Python has torch but maybe nothing else.
"""

import csv
import json
import os
import statistics
import sys

from bench_compare import load, markdown


def memory_by_stage(out):
    """Peak memory (MiB) and mean utilisation (%) per stage, from the nvidia-smi samples."""
    path = os.path.join(out, "gpu-memory.csv")
    if not os.path.exists(path):
        return {}
    stages = {}
    with open(path) as f:
        for r in csv.DictReader(f, skipinitialspace=True):
            try:
                mem, util = float(r["memory_used_mib"]), float(r["utilization_gpu_pct"])
            except (TypeError, ValueError):
                continue
            s = stages.setdefault(r["stage"], {"peak_mib": 0.0, "util": []})
            s["peak_mib"] = max(s["peak_mib"], mem)
            s["util"].append(util)
    return {k: (v["peak_mib"], statistics.mean(v["util"])) for k, v in stages.items()}


def main():
    out = sys.argv[1]
    rows = load(os.path.join(out, "results.jsonl"))
    memory = memory_by_stage(out)
    env = open(os.path.join(out, "environment.txt")).read() if os.path.exists(
        os.path.join(out, "environment.txt")) else ""
    p = print
    p("# GPU check\n")
    p("```")
    p(env.strip()[:4000])
    p("```\n")
    checks = [r for r in rows if "check" in r]
    p("## Parity on the fixtures\n")
    if checks:
        p("| test | result |\n|---|---|")
        for r in checks:
            p(f"| `{r['check']}` | {'passed' if r['passed'] else '**FAILED**'} |")
    else:
        p("No parity test ran (see the skipped stages below and check.log).")
    p()
    p("## Ours vs PyTorch, same card, alternating rounds\n")
    markdown(rows, print=p)
    p("## Pre-training (experiments/gpu_check.yaml)\n")
    pre = [r for r in rows if r.get("bench") == "pretrain"]
    if pre:
        r = pre[-1]
        peak = memory.get("pretrain", (None, None))
        p("| steps | clips/s (median step) | data-wait share | peak GPU memory (MiB) | mean GPU utilisation (%) |")
        p("|---|---|---|---|---|")
        p(f"| {r['steps']} | {r['clips_per_s']:.1f} | {100 * r['data_wait_share']:.1f} % | "
          f"{'–' if peak[0] is None else f'{peak[0]:.0f}'} | "
          f"{'–' if peak[1] is None else f'{peak[1]:.0f}'} |")
    else:
        p("No pre-training summary (see check.log).")
    p()
    if memory:
        p("## GPU memory and utilisation by stage (nvidia-smi, whole device)\n")
        p("| stage | peak memory (MiB) | mean utilisation (%) |\n|---|---|---|")
        for stage, (peak, util) in memory.items():
            p(f"| {stage} | {peak:.0f} | {util:.0f} |")
        torch_peaks = [r for r in rows if r.get("impl") == "pytorch" and r.get("peak_device_bytes")]
        if torch_peaks:
            p("\nPyTorch's own `max_memory_allocated` (tensors only, no context or cache):\n")
            p("| precision | bench | batch | MiB |\n|---|---|---|---|")
            for r in torch_peaks:
                p(f"| {r['precision']} | {r['bench']} | {r['batch']} | "
                  f"{r['peak_device_bytes'] / 2**20:.0f} |")
        p()
    problems = [r for r in rows if "skipped" in r or "timed_out" in r or "failed" in r]
    p("## Skipped, failed or timed out\n")
    if problems:
        for r in problems:
            p(f"- {json.dumps(r)}")
    else:
        p("Nothing: every stage ran to its end.")
    stages = [r for r in rows if "stage" in r]
    if stages:
        p(f"\nWall time of the check: {stages[-1]['t_s']} s.")


if __name__ == "__main__":
    main()
