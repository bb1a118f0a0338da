#!/usr/bin/env bash
# The probes of a finished run, re-scored by two builds in alternating rounds (round 1 the old
# build first, round 2 the new one first, ...): the wall time of
# `--stage probe --protocols PROTOCOLS` on a copy of the run, and whether every score row
# (encoder, task, protocol, seed, metric, value) is identical between the builds.
#     scripts/bench-probes.sh RUN_DIR OLD_BIN NEW_BIN [ROUNDS] [OUT.jsonl]
#   RUN_DIR  a scored run under results/runs (its embeddings cached under results/cache)
#   OLD_BIN, NEW_BIN  two builds of the `experiment` binary
#   ROUNDS   default 2; OUT default bench-probes.jsonl
# Environment: PROTOCOLS (default logistic,logistic_few_shot); SLICER_PYTHON, a Python with
# pyarrow (default python3). Prints one JSON line per timed run, then the ratio and the check.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,11p "$0" >&2; exit 2; }
run=$(realpath "$1"); old=$(realpath "$2"); new=$(realpath "$3")
rounds=${4:-2}; out=$(realpath -m "${5:-bench-probes.jsonl}")
protocols=${PROTOCOLS:-logistic,logistic_few_shot}
python=${SLICER_PYTHON:-python3}
"$python" -c 'import pyarrow' || { echo "no pyarrow in $python: set SLICER_PYTHON" >&2; exit 1; }
[ -f "$run/scores.parquet" ] || { echo "$run: no scores.parquet (not a scored run)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
: > "$out"
id=$(basename "$run")
for round in $(seq 1 "$rounds"); do
  order=(old new); [ $((round % 2)) -eq 0 ] && order=(new old)
  for build in "${order[@]}"; do
    bin=$old; [ "$build" = new ] && bin=$new
    copy="$tmp/$build-$round/$id"
    mkdir -p "$(dirname "$copy")" && cp -r "$run" "$copy"
    echo "== round $round: $build" >&2
    start=$(date +%s.%N)
    "$bin" "$copy/spec.yaml" --stage probe --resume "$copy" --protocols "$protocols" \
      > "$tmp/$build-$round.log" 2>&1 || { tail -20 "$tmp/$build-$round.log" >&2; exit 1; }
    end=$(date +%s.%N)
    cp "$copy/scores.parquet" "$tmp/$build-$round.parquet"
    echo "{\"bench\": \"probes\", \"build\": \"$build\", \"round\": $round, \"protocols\": \"$protocols\", \"run\": \"$id\", \"wall_s\": $(echo "$end - $start" | bc)}" | tee -a "$out"
    rm -rf "$copy"
  done
done
"$python" - "$tmp" "$out" <<'PY'
import glob, json, sys
import pyarrow.parquet as pq
tmp, out = sys.argv[1], sys.argv[2]
def rows(path):
    t = pq.read_table(path).to_pydict()
    keys = ("encoder", "task", "protocol", "seed", "metric", "value")
    return sorted(zip(*(t[k] for k in keys)))
tables = {p: rows(p) for p in sorted(glob.glob(f"{tmp}/*.parquet"))}
first = next(iter(tables.values()))
identical = all(t == first for t in tables.values())
times = [json.loads(l) for l in open(out)]
mean = lambda b: sum(r["wall_s"] for r in times if r["build"] == b) / sum(r["build"] == b for r in times)
summary = {"bench": "probes_summary", "rows": len(first), "identical_scores": identical,
           "old_wall_s": round(mean("old"), 2), "new_wall_s": round(mean("new"), 2),
           "speedup": round(mean("old") / mean("new"), 2)}
print(json.dumps(summary))
open(out, "a").write(json.dumps(summary) + "\n")
if not identical:
    for p, t in tables.items():
        diff = [(a, b) for a, b in zip(first, t) if a != b][:5]
        if diff:
            print(p, "differs, e.g.", diff, file=sys.stderr)
    sys.exit(1)
PY
