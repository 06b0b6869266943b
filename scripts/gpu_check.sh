#!/usr/bin/env bash
# make gpu-check: the GPU path's check (scripts/gpu_check.py says what it runs). Needs no `make setup` and no
# network: on a bare GPU machine it uses the machine's python3 (CUDA PyTorch, cuda-bindings, CuPy, onnx,
# onnxruntime) with the repository and models/ brought along; where `make setup` ran, the project's venv
# (with the colcon tree sourced when there is one). PYTHON=... picks another interpreter.
# Exit status 1 when a check fails; GPU checks skip with their reason on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=$(command -v python3); fi
fi
echo "[gpu-check] $("$PYTHON" --version 2>&1) ($PYTHON) on $(uname -m), $(nproc) cores; load: $(uptime | sed 's/.*load/load/')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
exec timeout "${GPU_CHECK_TIMEOUT:-780}" "$PYTHON" scripts/gpu_check.py "$@"
