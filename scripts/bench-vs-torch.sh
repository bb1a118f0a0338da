#!/usr/bin/env bash
# Ours against PyTorch on this machine's CPU in one call: the training step (d=2048, batch 64
# and 128) and embeddings/s (batch 256), two rounds that alternate the order (round 1 ours
# first, round 2 PyTorch first), PyTorch on 2 threads; then the ratios (scripts/bench_compare.py).
#     scripts/bench-vs-torch.sh [OUT.jsonl] [-- extra bench args, e.g. --reps 3 --warmup 1]
# Needs a Python that imports torch ($SLICER_PYTHON, default python3) and the PyTorch
# reference ($SLICER_REFERENCE, default benches/reference). Every record gets its round and
# the peak RSS of the process that printed it (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${SLICER_PYTHON:-python3}"
reference="$(cd "${SLICER_REFERENCE:-benches/reference}" && pwd)"
out="$(realpath -m "${1:-bench-vs-torch.jsonl}")"
shift $(( $# > 0 ? 1 : 0 ))
[ "${1:-}" = -- ] && shift
args=("$@"); [ ${#args[@]} -eq 0 ] && args=(--reps 3 --warmup 1)
"$python" -c 'import torch' || { echo "no torch in $python: set SLICER_PYTHON" >&2; exit 1; }

# Our bench binary: built here, or $SLICER_BENCH_BIN (an earlier build, to compare versions).
bench="${SLICER_BENCH_BIN:-$(cargo bench --bench train_step --no-run --message-format=json-render-diagnostics \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    # cargo also builds (and reports) the binaries when it builds a bench: keep the bench.
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "train_step":
        print(m["executable"])')}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
: > "$out"
# measure IMPL ROUND CMD...: runs CMD under /usr/bin/time, tags its JSON lines.
measure() {
  local impl="$1" round="$2"; shift 2
  echo "== round $round: $impl" >&2
  /usr/bin/time -f '%M' -o "$tmp/rss" "$@" > "$tmp/lines"
  python3 - "$tmp/lines" "$impl" "$round" "$(cat "$tmp/rss")" >> "$out" <<'PY'
import json, sys
lines, impl, rnd, rss = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for line in open(lines):
    if line.startswith("{"):
        r = json.loads(line)
        if r.get("impl", impl) == impl:
            print(json.dumps({**r, "impl": impl, "round": rnd, "process_peak_rss_kb": rss}))
PY
}
ours() { measure rust "$1" "$bench" "${args[@]}"; }
theirs() {
  (cd "$reference" && measure pytorch "$1" "$python" bench_torch.py --only train,infer \
    --threads 2 "${args[@]}")
}
ours 1; theirs 1
theirs 2; ours 2
python3 scripts/bench_compare.py "$out"
echo "records: $out" >&2
