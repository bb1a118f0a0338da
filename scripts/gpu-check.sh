#!/usr/bin/env bash
# The GPU check: on a machine with one NVIDIA GPU and PyTorch but no Rust toolchain and no
# network, runs what scripts/gpu-bundle.sh packed into .gpu-bundle/ within a time budget
# (default 470 s) and writes into OUT:
#   summary.md       the figures as tables (scripts/gpu_summary.py)
#   results.jsonl    one JSON line per measurement: parity tests, both implementations'
#                    benchmarks (two alternating rounds), the pre-training, stage boundaries
#   check.log        everything the programs printed
#   gpu-memory.csv   nvidia-smi samples every 250 ms, tagged with the stage that was running
#   environment.txt  GPU, driver, Python, torch, and the CUDA libraries each binary loaded
#   metrics.parquet  the pre-training's per-step metrics
# Stages, in order, each skipped (and said so) when the budget left cannot hold it:
#   1. parity: the integration tests `cuda_step_matches_the_cpu_step` (f32, 1e-3 relative)
#      and `cuda_bf16_step_stays_finite_and_close` on the fixtures;
#   2. benchmark round 1: ours then PyTorch's (benches/torch_device.py), f32 then bf16, the
#      training step at d=2048, batch 64/128/256, and inference embeddings/s;
#   3. pre-training: experiments/gpu_check.yaml for about 3 minutes (train.max_steps from
#      the batch-256 step time of round 1), with clips/s and the data-wait share;
#   4. benchmark round 2, PyTorch first.
# usage: scripts/gpu-check.sh OUT [--device cuda:0|cpu] [--budget-s S] [--small]
#   --device cpu --small runs the same plumbing at toy sizes on a `gpu-bundle.sh --cpu`
#   bundle (how the script is tested on a machine without a GPU).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bundle="${SLICER_BUNDLE:-$root/.gpu-bundle}"

out="" device="cuda:0" budget=470 small=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --budget-s) budget="$2"; shift 2 ;;
    --small) small=1; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) out="$1"; shift ;;
  esac
done
if [ -z "$out" ]; then
  echo "usage: scripts/gpu-check.sh OUT [--device cuda:0|cpu] [--budget-s S] [--small]" >&2
  exit 2
fi
if [ ! -f "$bundle/MANIFEST.json" ]; then
  echo "no bundle at $bundle: run scripts/gpu-bundle.sh on the build machine and carry .gpu-bundle" >&2
  exit 2
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
results="$out/results.jsonl" log="$out/check.log" envfile="$out/environment.txt"
: > "$results"; : > "$log"
work="$(mktemp -d)"
stage_file="$work/stage"
echo setup > "$stage_file"
start=$SECONDS
cuda=0; [ "${device%%:*}" = cuda ] && cuda=1

say() { echo "[$((SECONDS - start)) s] $*" | tee -a "$log" >&2; }
left() { echo $((budget - (SECONDS - start))); }
record() { echo "$1" >> "$results"; }
stage() { # stage NAME: a boundary in results.jsonl and the memory samples
  echo "$1" > "$stage_file"
  record "{\"stage\": \"$1\", \"t_s\": $((SECONDS - start))}"
  say "== $1"
}
# run_for NAME SECONDS CMD...: CMD with a timeout that fits the budget, output to the log;
# records a skip when fewer than 20 s would be left for it.
run_for() {
  local name="$1" want="$2"; shift 2
  local t; t=$(( $(left) - 10 )); [ "$t" -gt "$want" ] && t=$want
  if [ "$t" -lt 20 ]; then
    record "{\"skipped\": \"$name\", \"reason\": \"budget\", \"t_s\": $((SECONDS - start))}"
    say "skipped $name: $(left) s of the budget left"
    return 125
  fi
  timeout --kill-after=5 "$t" "$@" 2>>"$log"
  local rc=$?
  if [ $rc -eq 124 ]; then
    record "{\"timed_out\": \"$name\", \"after_s\": $t}"
  elif [ $rc -ne 0 ]; then
    record "{\"failed\": \"$name\", \"exit\": $rc}"
  fi
  [ $rc -ne 0 ] && say "$name exited with $rc (check.log has its output)"
  return $rc
}

# ---- environment: Python with torch, the CUDA libraries from its wheels, the binaries ----
python=""
for p in "${SLICER_PYTHON:-}" python3 /opt/torch/.venv/bin/python /opt/*/.venv/bin/python python; do
  if [ -n "$p" ] && command -v "$p" >/dev/null && "$p" -c 'import torch' 2>/dev/null; then
    python="$p"; break
  fi
done
[ -z "$python" ] && python=$(command -v python3 || true)
{
  echo "check started $(date -u +%FT%TZ) on $(hostname), device $device, budget ${budget} s"
  echo "bundle: $(tr -d '\n ' < "$bundle/MANIFEST.json" | head -c 160)..."
  echo "python: ${python:-none} ($("$python" --version 2>&1))"
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 || echo "torch: not importable"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  else
    echo "nvidia-smi: not found"
  fi
} > "$envfile" 2>&1
if [ -n "$python" ]; then
  libdirs=$("$python" - <<'PY' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = set()
for r in roots:
    for pattern in ("nvidia/*/lib", "nvidia/*/*/lib", "torch/lib"):
        dirs.update(d for d in glob.glob(os.path.join(r, pattern)) if os.path.isdir(d))
print(":".join(sorted(dirs)))
PY
)
  export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
bin="$work/bin"; mkdir -p "$bin"
for f in "$bundle"/bin/*.xz; do
  name=$(basename "$f" .xz)
  "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$f" "$bin/$name" \
    || xz -dc "$f" > "$bin/$name"
  chmod +x "$bin/$name"
  {
    echo "--- $name: libraries (ldd)"
    ldd "$bin/$name" | grep -E 'cuda|cublas|curand|cudnn|nvrtc|cudart|not found' || echo "(no CUDA libraries)"
  } >> "$envfile"
done
if grep -q "=> not found" "$envfile"; then
  say "some libraries were not found (environment.txt); LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi

if [ $cuda -eq 1 ] && command -v nvidia-smi >/dev/null; then
  echo "stage,timestamp,memory_used_mib,utilization_gpu_pct" > "$out/gpu-memory.csv"
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 250 2>>"$log" \
    | while IFS= read -r line; do echo "$(cat "$stage_file"),$line"; done >> "$out/gpu-memory.csv" &
  sampler=$!
fi
finish() {
  [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null # nvidia-smi ends on its next write
  stage done
  "$python" "$root/scripts/gpu_summary.py" "$out" > "$out/summary.md" 2>>"$log" \
    || say "summary failed (see check.log)"
  rm -rf "$work"
  say "check finished; summary in $out/summary.md"
}
trap finish EXIT

# ---- sizes ----
if [ $small -eq 1 ]; then
  d=64 batches=8,16 infer_batch=16 queue=64 reps=2 warmup=1
  pretrain_sets=(--set model.d=64 --set train.batch_size=8 --set data.pretrain.clips=32
    --set method.queue_size=64 --set normalization.sample_clips=16 --set train.workers=2)
  pretrain_s=15
else
  d=2048 batches=64,128,256 infer_batch=256 queue=65536 reps=5 warmup=2
  pretrain_sets=() pretrain_s=180
fi
torch_device="${device/cuda:*/cuda}"

# ---- 1. parity ----
stage parity
if [ $cuda -eq 1 ]; then
  run_for parity 120 env SLICER_FIXTURES="$root/tests/fixtures" SLICER_REQUIRE_CUDA=1 \
    "$bin/integration" cuda_ --nocapture --test-threads 1 > "$work/parity.txt"
  cat "$work/parity.txt" >> "$log"
  "$python" - "$work/parity.txt" >> "$results" <<'PY'
import json, re, sys
for line in open(sys.argv[1]):
    m = re.match(r"test (\S+) \.\.\. (ok|FAILED)", line)
    if m:
        print(json.dumps({"check": m.group(1), "passed": m.group(2) == "ok"}))
PY
else
  record '{"skipped": "parity", "reason": "no CUDA device"}'
fi

# ---- 2-4. benchmarks and pre-training ----
tag() { "$python" -c '
import json, sys
extra = json.loads(sys.argv[1])
for line in sys.stdin:
    if line.startswith("{"):
        print(json.dumps({**json.loads(line), **extra}), flush=True)' "$1"; }
ours() { # ours ROUND PRECISION
  [ "$2" = bf16 ] && [ $cuda -eq 0 ] && return 0 # no bf16 convolutions on the CPU
  stage "ours $2 round $1"
  run_for "ours $2 round $1" 150 "$bin/train_step" --device "$device" --precision "$2" \
    --d $d --batches $batches --infer-batch $infer_batch --queue $queue --reps $reps --warmup $warmup \
    | tag "{\"round\": $1}" >> "$results"
}
theirs() { # theirs ROUND PRECISION
  if ! "$python" -c 'import torch' 2>/dev/null; then
    record "{\"skipped\": \"pytorch $2 round $1\", \"reason\": \"torch not importable\"}"
    return 0
  fi
  [ "$2" = bf16 ] && [ $cuda -eq 0 ] && return 0
  stage "pytorch $2 round $1"
  run_for "pytorch $2 round $1" 150 "$python" "$root/benches/torch_device.py" \
    --device "$torch_device" --precision "$2" --d $d --train-batches $batches \
    --infer-batch $infer_batch --queue $queue --reps $reps --warmup $warmup \
    --reference "$root/benches/reference" | tag "{\"round\": $1}" >> "$results"
}
for precision in f32 bf16; do ours 1 $precision; theirs 1 $precision; done

stage pretrain
steps=$("$python" - "$results" "$pretrain_s" <<'PY'
import json, sys
seconds = float(sys.argv[2])
rows = [json.loads(l) for l in open(sys.argv[1])]
step = [r["median_s"] for r in rows if r.get("impl") == "rust" and r.get("bench") == "train_step"
        and r.get("precision") == "f32"]
# The largest batch's step time (the last measured); 30 steps when round 1 did not finish.
print(max(10, min(5000, int(seconds / step[-1]))) if step else 30)
PY
)
run_for pretrain $((pretrain_s + 90)) "$bin/experiment" "$root/experiments/gpu_check.yaml" \
  --stage pretrain --device "$device" --set train.max_steps="$steps" \
  --set output.root="$work/runs" "${pretrain_sets[@]}" > "$work/pretrain.txt"
cat "$work/pretrain.txt" >> "$log"
"$python" - "$work/pretrain.txt" "$steps" >> "$results" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
m = re.search(r"pre-training \((\w+)\): (\d+) steps.*?; ([\d.]+) clips/s \(median step\), waited for data ([\d.]+)%", text)
if m:
    print(json.dumps({"bench": "pretrain", "method": m.group(1), "steps": int(m.group(2)),
                      "clips_per_s": float(m.group(3)), "data_wait_share": float(m.group(4)) / 100,
                      "max_steps": int(sys.argv[2])}))
PY
metrics=$(find "$work/runs" -name metrics.parquet 2>/dev/null | head -1)
[ -n "$metrics" ] && cp "$metrics" "$out/metrics.parquet"

for precision in f32 bf16; do theirs 2 $precision; ours 2 $precision; done
