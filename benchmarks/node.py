"""`make bench-node`: the node under a real camera stream, measured from a third process.

Three processes on this machine: fer_camera (640x480 bgr8 at --rate Hz), fer_node (default model,
ONNX Runtime) and this one, which subscribes to `expressions` and /diagnostics. Reports processed
frames/s, latency from the image stamp to receipt of `expressions` (median, p90, p99), drops, and
with --soak-seconds the node's resident memory over a long run and the drop-counter consistency.

    scripts/with_ros.sh python -m benchmarks.node [--seconds 20] [--faces 1 5]
        [--profiles default scan_every_3rd full_scan yuface_roi] [--soak-seconds 600] [--json bench/bench_node.json]

Profiles (node parameters, run one after the other in the same invocation so they share the load):
'default' (yunet, ROI mode with a full scan every 5th frame), 'scan_every_3rd' (the same, a full scan
every 3rd frame: new faces found at most 2 frames late), 'full_scan' (yunet, the whole frame on
every frame: no ROI mode), 'yuface_roi' (the previous default: the yuface binding in ROI mode).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from fer_ros.hri.stamps import SKIP_REASONS
from fer_ros.msg import FaceExpressionArray
from fer_ros.ros.fastdds_profile import apply_profile
from fer_ros.util.processes import node_is_ready, node_status, start_camera, start_node, wait_until
from fer_ros.util.stats import percentiles

PROFILES = {'default': [], 'scan_every_3rd': ['detector_full_scan_period:=3'],
            'full_scan': ['detector_full_scan_period:=1'],
            'yuface_roi': ['detector:=yuface']}


class Probe(Node):
    def __init__(self) -> None:
        super().__init__('fer_bench_probe')
        self.receipts: list[tuple[float, float, int]] = []   # (receipt time, stamp, faces)
        self.diag: dict[str, str] = {}
        self.create_subscription(FaceExpressionArray, 'expressions', self.on_expr, 100)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.on_diag, 10)

    def on_expr(self, msg) -> None:
        self.receipts.append((time.time(), msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, len(msg.faces)))

    def on_diag(self, msg) -> None:
        self.diag = node_status(msg) or self.diag


def run_case(probe: Probe, faces: int, seconds: float, rate: float, rss_period: float = 0.0,
             params: list[str] = ()) -> dict:
    overrides = dict(p.split(':=', 1) for p in params)
    logs = tempfile.mkdtemp(prefix='fer_bench_node_')
    node = start_node({'backend': 'onnxruntime', **overrides}, log_path=Path(logs) / 'node.log')
    camera = None
    try:
        wait_until(lambda: node_is_ready(probe), 60, node, 'fer_node',
                   step=lambda: rclpy.spin_once(probe, timeout_sec=0.05))
        proc = psutil.Process(node.popen.pid)
        probe.receipts.clear()
        probe.diag = {}
        camera = start_camera({'rate_hz': rate, 'duration_s': seconds, 'num_faces': faces},
                              log_path=Path(logs) / 'camera.log')
        rss: list[tuple[float, float]] = []
        t0 = time.monotonic()
        next_rss = t0
        while camera.popen.poll() is None:
            rclpy.spin_once(probe, timeout_sec=0.05)
            if rss_period and time.monotonic() >= next_rss:
                rss.append((time.monotonic() - t0, proc.memory_info().rss / 2**20))
                next_rss += rss_period
        end = time.monotonic() + 2.5       # the last frame and one more diagnostics message
        while time.monotonic() < end:
            rclpy.spin_once(probe, timeout_sec=0.05)
    finally:
        for child in (camera, node):
            if child is not None:
                child.stop()
    # drop the first second (warm-up: discovery, first inference, arena allocation)
    stamps = np.array([s for _, s, _ in probe.receipts])
    keep = stamps >= stamps.min() + 1.0 if stamps.size else stamps.astype(bool)
    latency = np.array([(r - s) * 1000 for r, s, _ in probe.receipts])[keep]
    span = stamps[keep].max() - stamps[keep].min() if keep.sum() > 1 else float('nan')
    d = probe.diag
    result = {
        'faces': faces, 'camera_rate_hz': rate, 'seconds': seconds, 'node_params': list(params),
        'expressions_received': len(probe.receipts),
        'processed_fps': float((keep.sum() - 1) / span) if span == span and span > 0 else 0.0,
        'latency_ms': percentiles(latency) if latency.size else {},
        'mean_faces_per_frame': float(np.mean([f for _, _, f in probe.receipts])) if probe.receipts else 0.0,
        'node_diagnostics': {k: d.get(k) for k in ('frames_received', 'frames_processed', 'frames_dropped',
                                                   'decode_errors', 'pipeline_errors') + SKIP_REASONS},
    }
    if d:
        received, processed, dropped = (int(d[k]) for k in ('frames_received', 'frames_processed', 'frames_dropped'))
        errors = sum(int(d.get(k, 0)) for k in ('decode_errors', 'pipeline_errors') + SKIP_REASONS)
        result['drop_counter_consistent'] = received == processed + dropped + errors
        result['received_fps'] = received / seconds   # frames that reached the node's subscription
        result['published_equals_processed'] = len(probe.receipts) == processed
    if rss:
        warm = [m for t, m in rss if t >= min(30.0, seconds / 4)]
        result['rss_mb'] = {'first': rss[0][1], 'after_warmup': warm[0] if warm else rss[0][1], 'last': rss[-1][1],
                            'max': max(m for _, m in rss), 'samples': len(rss)}
        result['rss_growth_after_warmup_mb'] = result['rss_mb']['last'] - result['rss_mb']['after_warmup']
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=float, default=20.0, help='stream length per case (default 20)')
    ap.add_argument('--faces', type=int, nargs='*', default=[1, 5], help='face counts to run (none: soak only)')
    ap.add_argument('--rate', type=float, default=30.0)
    ap.add_argument('--profiles', nargs='*', default=list(PROFILES), choices=list(PROFILES),
                    help='node parameter sets to run (default: all, side by side)')
    ap.add_argument('--soak-seconds', type=float, default=0.0, help='add a soak run of this length (e.g. 600)')
    ap.add_argument('--json', help='write all figures here')
    args = ap.parse_args(argv)

    apply_profile()   # node and camera processes get the large-image Fast DDS profile
    rclpy.init()
    probe = Probe()
    results = {'machine': f'{platform.node()} {os.cpu_count()} cores', 'date': time.strftime('%Y-%m-%d %H:%M'),
               'load_average_at_start': [round(v, 2) for v in os.getloadavg()], 'cases': []}
    try:
        for profile, faces in [(p, f) for p in args.profiles for f in args.faces]:
            print(f'bench-node [{profile}]: {faces} face(s), {args.seconds:.0f} s at {args.rate:.0f} Hz ...',
                  flush=True)
            case = run_case(probe, faces, args.seconds, args.rate, params=PROFILES[profile])
            case['profile'] = profile
            results['cases'].append(case)
            lat = case['latency_ms']
            print(f"  received {case.get('received_fps', 0.0):.1f} frames/s of {args.rate:.0f}; "
                  f"processed {case['processed_fps']:.1f} frames/s; latency stamp->expressions median "
                  f"{lat.get('p50', float('nan')):.1f} ms, p90 {lat.get('p90', float('nan')):.1f}, p99 "
                  f"{lat.get('p99', float('nan')):.1f}; node: {case['node_diagnostics']}", flush=True)
        if args.soak_seconds > 0:
            print(f'bench-node: soak {args.soak_seconds:.0f} s, 1 face at {args.rate:.0f} Hz ...', flush=True)
            soak = run_case(probe, 1, args.soak_seconds, args.rate, rss_period=5.0)
            results['soak'] = soak
            print(f"  RSS {soak['rss_mb']}; growth after warm-up {soak['rss_growth_after_warmup_mb']:.1f} MB; "
                  f"drop counter consistent: {soak.get('drop_counter_consistent')}; node: {soak['node_diagnostics']}",
                  flush=True)
    finally:
        probe.destroy_node()
        rclpy.try_shutdown()
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'bench-node: wrote {args.json}')
    print(f'bench-node: load average at the end {[round(v, 2) for v in os.getloadavg()]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
