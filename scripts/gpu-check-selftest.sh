#!/usr/bin/env bash
# Tests the GPU check's CPU-side logic on a machine without a GPU (.ci/run calls it):
# packs a CPU bundle into a temporary folder (scripts/gpu-bundle.sh --cpu), runs scripts/gpu-check.sh on it at toy
# sizes, and checks what it wrote: two alternating benchmark rounds, the pre-training's
# clips/s and data-wait share, the skipped parity stage, the manifest and the size limit; then
# the summary's ours-vs-PyTorch ratios on a copy with PyTorch records added.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export SLICER_BUNDLE="$out/bundle" # leaves a CUDA bundle in .gpu-bundle alone
scripts/gpu-bundle.sh --cpu
scripts/gpu-check.sh "$out/check" --device cpu --small --budget-s 400

python3 - "$out/check" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "results.jsonl"))]
def fail(msg):
    sys.exit(f"gpu-check selftest: {msg}\n--- results.jsonl\n" + "\n".join(map(json.dumps, rows)))
ours = [r for r in rows if r.get("impl") == "rust" and r.get("bench") == "train_step"]
if sorted({r["round"] for r in ours}) != [1, 2]:
    fail("expected train_step records from rounds 1 and 2")
if {r["batch"] for r in ours} != {8, 16}:
    fail("expected both --small batches")
if not any(r.get("bench") == "infer_embed" for r in rows):
    fail("no inference record")
pre = [r for r in rows if r.get("bench") == "pretrain"]
if not pre or pre[0]["clips_per_s"] <= 0 or not 0 <= pre[0]["data_wait_share"] <= 1:
    fail("no pre-training record with clips/s and a wait share")
if not any(r.get("skipped") == "parity" for r in rows):
    fail("the parity stage was not marked skipped on the CPU")
for name in ("summary.md", "check.log", "environment.txt", "metrics.parquet"):
    if not os.path.getsize(os.path.join(out, name)):
        fail(f"{name} is empty")
manifest = json.load(open(os.environ["SLICER_BUNDLE"] + "/MANIFEST.json"))
if sorted(manifest["files"]) != ["bin/experiment.xz", "bin/integration.xz",
                                 "bin/train_step.xz"]:
    fail(f"unexpected bundle contents {sorted(manifest['files'])}")
summary = open(os.path.join(out, "summary.md")).read()
for heading in ("## Parity", "## Ours vs PyTorch", "**train_step**", "**infer_embed**",
                "## Pre-training"):
    if heading not in summary:
        fail(f"summary.md lacks {heading}")
# The ratio column: PyTorch records at twice our time give 0.5.
with open(os.path.join(out, "results.jsonl"), "a") as f:
    for r in ours:
        f.write(json.dumps({**r, "impl": "pytorch", "median_s": 2 * r["median_s"]}) + "\n")
PY
python3 scripts/gpu_summary.py "$out/check" > "$out/summary2.md"
if ! grep -Eq '^\| f32 \| 64 \| 8 \| .* \| 0\.5 \|$' "$out/summary2.md"; then
  echo "gpu-check selftest: the summary's ratio for PyTorch at twice our time is not 0.5" >&2
  cat "$out/summary2.md" >&2
  exit 1
fi
echo "gpu-check selftest passed"
