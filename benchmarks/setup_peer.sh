#!/usr/bin/env bash
# Make the venv of the benchmark's peer (the `fer` library + tensorflow-cpu), idempotent:
#   bash benchmarks/setup_peer.sh [VENV]      (default bench/.venv-peer; `make bench` runs this)
# Kept apart from .venv so the product never gets TensorFlow. Pins: benchmarks/requirements-peer.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-bench/.venv-peer}
fer_pin='fer==25.10.3'
stamp="$venv/.fer_peer_ok"
want="$fer_pin $(sha256sum benchmarks/requirements-peer.txt | cut -c1-16)"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then exit 0; fi
echo "[bench] creating the peer venv $venv (fer + tensorflow-cpu from PyPI; first run only, a few minutes)" >&2
"${PYTHON:-python3.11}" -m venv --clear "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$fer_pin"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r benchmarks/requirements-peer.txt
"$venv/bin/python" -c 'from fer.fer import FER'
echo "$want" > "$stamp"
