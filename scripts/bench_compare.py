"""Ours against PyTorch from benchmark JSON lines (benches/train_step.rs, bench_torch.py,
benches/torch_device.py): per workload, each round's median and the ratio of the medians over
rounds. Standard library only.

usage: python3 scripts/bench_compare.py RESULTS.jsonl   -> Markdown tables on stdout
"""

import json
import statistics
import sys

# (bench, value, what the ratio means)
WORKLOADS = [
    ("train_step", "median_s", "ours over PyTorch's time: below 1, ours is faster"),
    ("infer_embed", "throughput", "ours over PyTorch's embeddings/s: above 1, ours is faster"),
]


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def key(r):
    return (r.get("precision") or "f32", r.get("d"), r.get("batch"))


def comparison(rows, bench, value):
    """[(key, ours per round, PyTorch per round, ratio of the medians)], sorted by key."""
    sides = {"rust": {}, "pytorch": {}}
    for r in sorted(rows, key=lambda r: r.get("round", 0)):
        if r.get("bench") == bench and r.get("impl") in sides:
            sides[r["impl"]].setdefault(key(r), []).append(r[value])
    table = []
    for k in sorted(set(sides["rust"]) | set(sides["pytorch"]), key=lambda k: (k[0], -(k[1] or 0), k[2] or 0)):
        a, b = sides["rust"].get(k, []), sides["pytorch"].get(k, [])
        ratio = statistics.median(a) / statistics.median(b) if a and b else None
        table.append((k, a, b, ratio))
    return table


def fmt(x, digits=3):
    return "–" if x is None else f"{x:.{digits}g}"


def markdown(rows, print=print):
    """The comparison tables for every workload present in `rows`."""
    for bench, value, meaning in WORKLOADS:
        table = comparison(rows, bench, value)
        if not table:
            continue
        unit = "s/step" if value == "median_s" else "embeddings/s"
        print(f"**{bench}** ({unit}, median of each round; ratio: {meaning})\n")
        print("| precision | d | batch | ours (rounds) | PyTorch (rounds) | ratio |")
        print("|---|---|---|---|---|---|")
        for (precision, d, batch), a, b, ratio in table:
            print(f"| {precision} | {d} | {batch} | {', '.join(fmt(x, 4) for x in a) or '–'} | "
                  f"{', '.join(fmt(x, 4) for x in b) or '–'} | {fmt(ratio)} |")
        print()
    rss = {}
    for r in rows:
        if "process_peak_rss_kb" in r:
            rss.setdefault(r["impl"], {})[r.get("round")] = r["process_peak_rss_kb"]
    if rss:
        print("**peak RSS of each benchmark process** (GB, per round)\n")
        print("| ours | PyTorch | ratio |\n|---|---|---|")
        a = sorted(rss.get("rust", {}).items())
        b = sorted(rss.get("pytorch", {}).items())
        ma = statistics.median(v for _, v in a) if a else None
        mb = statistics.median(v for _, v in b) if b else None
        print(f"| {', '.join(f'{v / 1e6:.2f}' for _, v in a) or '–'} | "
              f"{', '.join(f'{v / 1e6:.2f}' for _, v in b) or '–'} | "
              f"{fmt(ma / mb if ma and mb else None)} |\n")


if __name__ == "__main__":
    markdown(load(sys.argv[1]))
