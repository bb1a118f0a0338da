#!/usr/bin/env bash
# Executes the notebooks headless with the evcxr Rust kernel. Installs what it needs into
# .tools/ (evcxr_jupyter from crates.io, nbconvert into a Python venv) on first use.
#   notebooks/run.sh            execute into .tools/nbout/ (a check: fails if a cell fails)
#   notebooks/run.sh --inplace  execute and save the outputs into the notebooks themselves
#   notebooks/run.sh [--inplace] notebooks/02_lape_tables.ipynb ...   only these
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=$root/.tools
mkdir -p "$tools"
if [ ! -x "$tools/bin/evcxr_jupyter" ]; then
  echo "== cargo install evcxr_jupyter (about 5 min on 2 cores)"
  cargo install evcxr_jupyter --version 0.22.0 --locked --root "$tools"
fi
if [ ! -x "$tools/venv/bin/jupyter-nbconvert" ]; then
  echo "== python venv with nbconvert"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet jupyter_core jupyter_client nbconvert nbclient nbformat ipykernel
fi
export JUPYTER_PATH=$tools/jupyter
export JUPYTER_DATA_DIR=$tools/jupyter
export PATH=$tools/bin:$tools/venv/bin:$PATH
# One evcxr build folder for all notebooks: the first compiles the crate, the rest reuse it.
export EVCXR_TMPDIR=$tools/evcxr
mkdir -p "$EVCXR_TMPDIR"
evcxr_jupyter --install >/dev/null
if [ "${1:-}" = "--inplace" ]; then
  target=(--inplace)
  shift
else
  mkdir -p "$tools/nbout"
  target=(--output-dir "$tools/nbout")
fi
notebooks=("$@")
[ ${#notebooks[@]} -gt 0 ] || notebooks=(notebooks/*.ipynb)
for nb in "${notebooks[@]}"; do
  echo "== $nb"
  start=$(date +%s)
  (cd notebooks && jupyter nbconvert --to notebook --execute "$(basename "$nb")" "${target[@]}" \
    --ExecutePreprocessor.kernel_name=rust --ExecutePreprocessor.timeout=3600)
  echo "   $(( $(date +%s) - start )) s"
done
