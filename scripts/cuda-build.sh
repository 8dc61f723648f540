#!/usr/bin/env bash
# The CUDA build of adiff, on a machine with or without an NVIDIA GPU (issue 22, item 1).
#
#   scripts/cuda-build.sh [check|build]
#
# Installs the CUDA 13 toolkit pieces candle's `cuda` feature needs from PyPI (nvcc, the runtime
# headers, CCCL) into target/cuda-toolkit (nothing outside the checkout), points CUDA_HOME and
# PATH at them, and runs one fixed cargo command in target/cuda (its own target dir, so the CPU
# build is untouched): `check` (the default, what CI runs) type-checks adiff-core and the adiff
# binary with `--features cuda`, which also compiles candle's CUDA kernels with nvcc; `build` also
# links the binary, which then needs cuBLAS/cuRAND/NVRTC libraries and libcuda at link and run
# time (not done here: see docs/distributed.md).
#
# No GPU is queried: CUDA_COMPUTE_CAP defaults to 90 (H100); cudarc is told the toolkit version
# (CUDARC_CUDA_VERSION), and nvcc is pinned to 13.4 (cudarc 0.19 in Cargo.lock refuses 13.5).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-check}"
tk="$PWD/target/cuda-toolkit"
# Every piece pinned: nvcc's own dependencies (nvvm, crt) would otherwise come at the newest
# release, whose PTX the pinned ptxas cannot assemble.
pins="nvidia-cuda-nvcc==13.4.92 nvidia-nvvm==13.4.92 nvidia-cuda-crt==13.4.92 nvidia-cuda-runtime==13.4.92 nvidia-cuda-cccl==13.3.5.0.6"
if [ "$(cat "$tk/.pins" 2>/dev/null)" != "$pins" ]; then
  rm -rf "$tk"
  # shellcheck disable=SC2086
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$tk" $pins
  echo "$pins" > "$tk/.pins"
fi
cuda="$tk/nvidia/cu13"
export CUDA_HOME="$cuda" CUDA_PATH="$cuda" CUDA_ROOT="$cuda"
export PATH="$cuda/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13040}"
export CARGO_TARGET_DIR="$PWD/target/cuda"
nvcc --version | tail -2
case "$mode" in
  check) cargo check -p adiff-core -p adiff-trainer --features cuda ;;
  build) cargo build --release -p adiff-trainer --features cuda ;;
  *) echo "usage: $0 [check|build]" >&2; exit 2 ;;
esac
