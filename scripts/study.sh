#!/usr/bin/env bash
# The pre-training-seed study (docs/findings/pretraining-gain.md): SLICER as it was, each
# change of the budget-sized recipe, all of them, SLICER's ablations (demo corpus only) and
# the baselines, three pre-training seeds each, on the demo corpus and on make_tasks.sh's corpus, in order of priority (the
# main comparison on both corpora first). Each suite skips members that already finished and
# resumes interrupted ones, so the script can be rerun after a stop. make_tasks needs
# ../tasks_small (scripts/make_tasks.sh ../tasks_small small).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin experiment
run() { target/release/experiment "experiments/$1.yaml" "${@:2}"; }
run study --members slicer,slicer_recipe
run study_make_tasks --members slicer,slicer_recipe
run study
run study_make_tasks
run study_baselines
