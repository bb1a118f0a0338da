#!/usr/bin/env bash
# Builds the CUDA code on a machine without a GPU or a CUDA install (CI, this dev box):
#     .ci/cuda.sh cargo build --release --features cuda,nccl   (or cuda,cudnn)
# runs the given command with NVIDIA's CUDA 13.0 toolchain from PyPI wheels (installed once
# into .tools/cuda) and stubs of libcuda.so.1 and libcudnn.so.9 to link against (the driver
# library ships with the GPU driver, in no wheel; cuDNN comes with PyTorch on a GPU machine).
# The binaries link but cannot run here; on a GPU machine with CUDA installed, plain `cargo build --release --features cuda` is all it takes.
# Why each step: docs/gpu.md, "Building CUDA without a GPU".
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/.tools/cuda"
export CUDA_HOME="$tools/nvidia/cu13"
export NCCL_ROOT="$tools/nvidia/nccl"

if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
  echo "== installing the CUDA 13.0 toolchain wheels into $tools" >&2
  rm -rf "$tools"
  # One pip command: a second `pip --target` into the same folder skips nvidia/.
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$tools" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-curand==10.4.0.35 nvidia-cublas==13.0.2.14 nvidia-nccl-cu13==2.27.7
  # The wheels ship only versioned names; the linker wants the plain ones.
  (cd "$CUDA_HOME/lib" && for l in cudart:13 cublas:13 cublasLt:13 curand:10 nvrtc:13; do
    ln -sf "lib${l%%:*}.so.${l##*:}" "lib${l%%:*}.so"; done)
  # cudarc searches CUDA_HOME/lib for every library it links, NCCL included.
  ln -sf "$NCCL_ROOT/lib/libnccl.so.2" "$CUDA_HOME/lib/libnccl.so"
fi

export PATH="$CUDA_HOME/bin:$PATH"             # cudarc runs `nvcc --version`
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" # no nvidia-smi here: H100/H200 are sm_90

# The driver library (libcuda, from the GPU driver) and cuDNN (a 600 MB wheel) are linked
# against stubs that define the symbols the crates use: on a GPU machine the real ones load.
stub() { # stub LIB SONAME SYMBOL_PATTERN: lib$LIB.so in $CUDA_HOME/lib
  target="${CARGO_TARGET_DIR:-target}"
  for f in "$target"/debug/deps/*.rlib "$target"/debug/build/candle-kernels-*/out/*.a; do
    if [ -f "$f" ]; then nm -u --format=just-symbols "$f" 2>/dev/null || true; fi
  done | { grep -E "$3" || true; } | sort -u \
    | sed 's/.*/int &(void){return 999;}/' > "$tools/lib$1_stub.c"
  gcc -shared -fPIC -Wl,-soname,"$2" -o "$CUDA_HOME/lib/lib$1.so" "$tools/lib$1_stub.c"
}
if [ ! -f "$CUDA_HOME/lib/libcuda.so" ] || [ ! -f "$CUDA_HOME/lib/libcudnn.so" ]; then
  echo "== compiling the crates, then stubs of libcuda.so.1 and libcudnn.so.9 from the symbols they use" >&2
  # Everything compiles; only linking needs the libraries, so build the library (an rlib) first.
  cargo build --lib --features cuda,nccl,cudnn
  stub cuda libcuda.so.1 '^cu[A-Z]'
  stub cudnn libcudnn.so.9 '^cudnn[A-Z]'
fi

"$@"
