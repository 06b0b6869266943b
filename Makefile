# fer_ros — every target runs `make setup` first (idempotent, quiet; a few seconds when nothing changed).
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help setup demo test test-fast bench bench-node bench-models clean

help:
	@echo "make demo        node + camera process on the repository's face photos; prints faces and commands"
	@echo "make test        every test (unit, backend parity, real rclpy/DDS across processes)"
	@echo "make test-fast   tests that need no ROS and no training (seconds)"
	@echo "make bench       perception benchmark (per stage, per model/backend, vs the fer library)"
	@echo "make bench-node  node benchmark: 30 Hz camera in another process, rates and latency"
	@echo "make bench-models  params/MACs, CPU training throughput, ONNX Runtime latency per model"
	@echo "make setup       .venv + pinned dependencies + ROS 2 wheels when no system ROS + colcon build"

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/with_ros.sh python -m fer_ros.tools.demo

test: setup
	@bash scripts/with_ros.sh python -m pytest -q -p no:cacheprovider test

test-fast: setup
	@bash scripts/with_ros.sh python -m pytest -q -p no:cacheprovider -m "not ros and not slow" test

bench: setup
	@bash benchmarks/setup_peer.sh && bash scripts/with_ros.sh python -m benchmarks.perception --json bench/bench.json

bench-node: setup
	@bash scripts/with_ros.sh python -m benchmarks.node --json bench/bench_node.json

bench-models: setup
	@bash scripts/with_ros.sh python -m benchmarks.models --json bench/models.json

clean:
	rm -rf build install log .venv models bench
