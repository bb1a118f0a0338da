#!/usr/bin/env bash
# The Python tier, run by .ci/run: builds the wheel (python/, PyO3 + maturin), runs its pytest
# suite (the numpy API, then the HEAR module with torch), checks two models with the HEAR
# kit's hear-validator, and scores the demo encoder and its random init with heareval's
# embeddings and predictions runners on the project's HEAR-format tasks, printing the scores
# beside the project's own `logistic` on the same clips (OUT/hear_scores.md).
#
#     scripts/python-tier.sh [OUT]        (default: target/python-tier)
#
# Everything comes from PyPI into .tools/python (torch 2.11's Linux wheel, about 5 GB with its
# CUDA libraries; it runs on the CPU), installed once and reused while that folder lives.
# The 2021 tools need help on today's stack (docs/python.md, "Workarounds"): hearvalidator
# and heareval are installed with --no-deps, TensorFlow is a stand-in module on PYTHONPATH,
# torch.load's weights-only default is switched off, and one pytorch-lightning property is
# patched at run time (python/tests/hear_tools/heareval_predictions.py).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/python-tier}
rm -rf "$out"
mkdir -p "$out/logs"
venv=.tools/python
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
pip() { "$py" -m pip install -q --disable-pip-version-check "$@"; }
quiet() { # runs a command into a log file; on failure shows the log's end
  local log="$out/logs/$1.log"
  shift
  if ! "$@" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "failed: $* (log: $log)" >&2
    return 1
  fi
}

echo "-- installing into $venv (skipped where present)"
pip maturin==1.16.0 torch==2.11.0 numpy pytest pyarrow
pip --no-deps --ignore-requires-python hearvalidator==2021.0.6
pip --no-deps heareval==2021.1.3
pip click intervaltree more-itertools pandas python-slugify sed-eval dcase-util tqdm torchinfo \
  scikit-learn scipy soundfile 'pytorch-lightning>=1.6,<2'

echo "-- the wheel (dev profile: it reuses the test build's optimised dependencies)"
quiet wheel "$venv/bin/maturin" build -m python/Cargo.toml -o "$out/wheel"
pip --force-reinstall --no-deps "$out"/wheel/slicer_audio-*.whl
cargo build --bin experiment
experiment=${CARGO_TARGET_DIR:-target}/debug/experiment

echo "-- pytest (numpy API, HEAR module)"
SLICER_EXPERIMENT=$experiment "$py" -m pytest -q -rs python/tests

export PYTHONPATH=python/tests/hear_tools TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
echo "-- hear-validator 2021.0.6"
"$experiment" convert tests/fixtures/byola_format_d64.pth "$out/byola-d64" \
  --norm-mean -5.4919195 --norm-std 5.0389895 >/dev/null
for model in results/models/slicer-demo "$out/byola-d64"; do
  quiet "validate-$(basename "$model")" "$venv/bin/hear-validator" slicer -m "$model" -d cpu
  echo "$model: $(tail -1 "$out/logs/validate-$(basename "$model").log")"
done

echo "-- heareval 2021.1.3 on the HEAR-format tasks of experiments/hear.yaml and the event task"
"$experiment" hear-tasks experiments/hear.yaml "$out/tasks" --events 400,100,200
for model in slicer-demo slicer-demo-random-init; do
  quiet "embed-$model" "$py" -m heareval.embeddings.runner slicer --model "results/models/$model" \
    --tasks-dir "$out/tasks" --embeddings-dir "$out/embeddings/$model"
  for task in "$out/embeddings/$model"/slicer/*-v1; do
    # Scene tasks: heareval's `fast` grid (MLPs up to 50 epochs, seconds each here); the
    # event task: `faster` (up to 10 epochs), as its event postprocessing grid is slow on 2 cores.
    grid=fast
    grep -q '"embedding_type": "event"' "$task/task_metadata.json" && grid=faster
    quiet "predict-$model-$(basename "$task")" "$py" python/tests/hear_tools/heareval_predictions.py \
      "$task" --grid "$grid"
  done
done
ours=$(ls -d results/runs/*-hear-*/ | sort | tail -1)
"$py" python/tests/hear_tools/hear_table.py "$out/embeddings" "$ours" | tee "$out/hear_scores.md"
echo "(ours: $ours)"
