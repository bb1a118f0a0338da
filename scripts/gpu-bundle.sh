#!/usr/bin/env bash
# Builds and packs everything scripts/gpu-check.sh runs on a GPU machine that has no Rust
# toolchain and no network, into the ignored folder .gpu-bundle/ (carry it with the
# repository; the GPU machine receives at most 64 MiB in all; $SLICER_BUNDLE packs elsewhere):
#     scripts/gpu-bundle.sh          # --features cuda,cudnn through .ci/cuda.sh
#     scripts/gpu-bundle.sh --cpu    # the same binaries for the CPU, to test the check here
# Contents: bin/{experiment,integration,train_step}.xz (release builds, stripped, xz) and
# MANIFEST.json (commit, features, sizes, sha256). The fixtures, the spec and the PyTorch
# side travel in the repository itself (tests/fixtures, experiments/gpu_check.yaml,
# benches/torch_device.py with benches/reference).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${SLICER_BUNDLE:-.gpu-bundle}" # where to pack (the check reads the same variable)
limit_bytes=$((64 * 1024 * 1024))
case "${1:-}" in
  --cpu) cargo=(cargo); features=(); label=cpu ;;
  "") cargo=(.ci/cuda.sh cargo); features=(--features cuda,cudnn); label=cuda,cudnn ;;
  *) echo "usage: scripts/gpu-bundle.sh [--cpu]" >&2; exit 2 ;;
esac

# One cargo call per target kind; each prints its executables as JSON messages.
executables() {
  "${cargo[@]}" "$@" "${features[@]}" --message-format=json-render-diagnostics \
    | python3 -c 'import json, sys
for line in sys.stdin:
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])'
}
echo "== building ($label, release)"
# (the test build also lists the experiment binary it builds for the CLI tests: keep one each)
artifacts=$(
  executables build --release --bin experiment
  executables test --release --test integration --no-run
  executables bench --bench train_step --no-run
) && artifacts=$(sort -u -k1,1 <<< "$artifacts")

rm -rf "$out.tmp" && mkdir -p "$out.tmp/bin"
while read -r name path; do
  strip -o "$out.tmp/bin/$name" "$path"
  xz -T0 -6 "$out.tmp/bin/$name"
done <<< "$artifacts"
python3 - "$out.tmp" "$label" "$(git rev-parse HEAD)$(git diff --quiet HEAD || echo -dirty)" <<'PY'
import hashlib, json, os, sys
root, features, commit = sys.argv[1:4]
files = {}
for dirpath, _, names in os.walk(root):
    for n in sorted(names):
        p = os.path.join(dirpath, n)
        files[os.path.relpath(p, root)] = {
            "bytes": os.path.getsize(p),
            "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest(),
        }
manifest = {"features": features, "commit": commit, "files": files}
json.dump(manifest, open(os.path.join(root, "MANIFEST.json"), "w"), indent=1)
PY
rm -rf "$out" && mv "$out.tmp" "$out"

bundle=$(du -sb "$out" | cut -f1)
repo=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
echo "bundle: $((bundle / 1024)) KiB in $out; repository (tracked files): $((repo / 1024)) KiB"
if [ $((bundle + repo)) -gt $limit_bytes ]; then
  echo "bundle + repository exceed the 64 MiB a GPU machine receives" >&2
  exit 1
fi
