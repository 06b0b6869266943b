#!/usr/bin/env bash
# Fetch the npm package @vladmandic/face-api pinned in fer_ros/tools/convert_face_api.py (npm pack, sha256
# checked; only two networks' weights are read) and convert its 128-d face embedding network and its
# 68-point landmark network to models/face_embedder_face_api.onnx and models/face_landmarks_face_api.onnx
# (fer-convert-face-api: onnx alone, no JavaScript runs).
# Optional: without npm (and without the tarball in models/cache) it warns and exits 0; the node then
# estimates head pose from the detector's five points and runs without person re-identification and
# enrolment (docs/people.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if ! command -v npm >/dev/null && ! ls models/cache/vladmandic-face-api-*.tgz >/dev/null 2>&1; then
  echo "[setup] npm not found: no face-api models (head pose from the detector's 5 points; no re-identification" \
       "or enrolment); see docs/people.md" >&2
  exit 0
fi
"$PY" -m fer_ros.tools.convert_face_api --fetch models/cache
