#!/usr/bin/env bash
# Fetch the `yuface` wheel pinned in requirements-model.txt (the x86_64 build, whatever this machine is:
# only its libfacedetection.so FILE is read, never loaded) and convert libfacedetection's CNN to
# models/face_detector_libfacedetection.onnx (fer-convert-face-detector: pyelftools + onnx, no torch).
set -euo pipefail
cd "$(dirname "$0")/.."
# The project's venv when there is one (make setup), else $PYTHON or python3 (a ROS workspace / Jetson).
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
mkdir -p models/cache
pin=$(mktemp); trap 'rm -f "$pin"' EXIT
grep -E '^yuface==' requirements-model.txt >"$pin"   # with its sha256: pip checks the download
"$PY" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
  --platform manylinux2014_x86_64 --python-version 3.10 --implementation cp --require-hashes -d models/cache -r "$pin"
wheel=$(ls -t models/cache/yuface-*.whl | head -n 1)
"$PY" -m fer_ros.tools.convert_face_detector --wheel "$wheel" --out models/face_detector_libfacedetection.onnx
