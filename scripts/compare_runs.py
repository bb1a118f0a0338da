#!/usr/bin/env python3
"""Compares two run folders' scores.parquet and metrics.parquet cell by cell, leaving out
run ids, hashes and timings (NaN equals NaN): whether a rerun reproduced a committed run.

    python3 scripts/compare_runs.py results/runs/A results/runs/B    (needs pyarrow)
"""
import math
import sys

import pyarrow.parquet as pq

SKIP = {"run", "spec_hash", "wall_s", "clips_per_s", "data_wait_s"}


def same(x, y):
    nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
    return x == y or nan


def main(a, b):
    differing = 0
    for name in ["scores.parquet", "metrics.parquet"]:
        ta = pq.read_table(f"{a}/{name}").to_pylist()
        tb = pq.read_table(f"{b}/{name}").to_pylist()
        cols = [c for c in ta[0] if c not in SKIP]
        diff = sum(1 for ra, rb in zip(ta, tb) for c in cols if not same(ra[c], rb[c]))
        diff += abs(len(ta) - len(tb))
        differing += diff
        print(f"{name}: {len(ta)} vs {len(tb)} rows; compared {', '.join(cols)}; differing cells: {diff}")
    return 1 if differing else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
