"""`make bench-node`: the node under a real camera stream, measured from a third process.

Three processes on this machine: fer_camera (640x480 bgr8 at --rate Hz), fer_node (default model,
ONNX Runtime) and this one, which subscribes to `expressions` and /diagnostics. Reports per case:
processed frames/s, latency from the image stamp to receipt of `expressions` (median, p90, p99), drops,
the node's CPU use (CPU seconds per processed frame, and the share of one core it takes at the camera's
rate: what a robot's navigation stack loses), and with --soak-seconds the node's resident memory over a
long run and the drop-counter consistency.

    scripts/with_ros.sh python -m benchmarks.node [--seconds 20] [--faces 1 5]
        [--profiles default inline scan_every_100ms] [--newcomer-seconds 40] [--baseline CHECKOUT]
        [--rounds 1] [--soak-seconds 600] [--json bench/bench_node.json]

Newcomer case (--newcomer-seconds > 0): the camera shows 2 faces, the second leaving and coming back every
NEWCOMER_PERIOD_S (fer_camera's newcomer mode); for each return, the time from the stamp of its first frame
to the receipt of the first `expressions` message with both faces (target: p99 <= 100 ms).

Pan case (--pan-seconds > 0): one face, the camera panning (fer_camera's pan_px_s, PAN_PX_S): every frame
changes, the worst case of the scan's scene-change gate (detector_idle_scan_s).

Profiles (node parameters; every case of a round runs one after the other, the rounds repeat that, so
they share the load): 'default' (the whole-frame scan on its own thread, at least every
detector_full_scan_s), 'inline' (the same schedule, the scan on the frame it is due on: the old
structure), 'scan_every_100ms' (default with detector_full_scan_s 0.1: less CPU, newcomers later),
'no_scene_gate' (default with detector_idle_scan_s 0: a scan every detector_full_scan_s even in a still scene).
--baseline CHECKOUT adds the profile 'baseline': the fer_node of another checkout's colcon install tree
(e.g. a worktree of main before a change) with its defaults, so before and after run side by side.
'without_people' (the default without the 68-landmark and face-embedding networks: head pose from the
detector's five points, no re-identification; docs/people.md's cost figures compare the two), 'no_mirror'
(the default with mirror_tta never: N classifier rows instead of 2N; docs/evaluation.md has its accuracy cost),
'lean' (both: the lowest-latency configuration, docs/performance.md).
"""
from __future__ import annotations

import argparse
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
from std_msgs.msg import Header

from benchmarks import write_report
from fer_ros.hri.stamps import SKIP_REASONS
from fer_ros.msg import FaceExpressionArray
from fer_ros.ros.fastdds_profile import apply_profile
from fer_ros.util.processes import node_is_ready, node_status, start_camera, start_node, wait_until
from fer_ros.util.stats import percentiles

PROFILES = {'default': [], 'inline': ['detector_background_scan:=false'],
            'scan_every_100ms': ['detector_full_scan_s:=0.1'],
            'no_scene_gate': ['detector_idle_scan_s:=0.0'],
            'without_people': ['identify_people:=false', 'head_pose_landmarks:=false'],
            'no_mirror': ['mirror_tta:=never'],
            'lean': ['mirror_tta:=never', 'identify_people:=false', 'head_pose_landmarks:=false']}
BASELINE = 'baseline'
PAN_PX_S = 60.0                # the pan case's camera turns this many pixels a second (2 px a frame at 30 Hz)
NEWCOMER_PERIOD_S = 1.2        # the newcomer is away 0.6 s (its track ends), then back 0.6 s
WARMUP_S = 1.0                 # dropped from every figure: discovery, first inference, arena allocation


class Probe(Node):
    def __init__(self) -> None:
        super().__init__('fer_bench_probe')
        self.receipts: list[tuple[float, float, int]] = []   # (receipt time, stamp, faces)
        self.newcomers: list[float] = []                      # stamps of the frames where a face reappears
        self.diag: dict[str, str] = {}
        self.create_subscription(FaceExpressionArray, 'expressions', self.on_expr, 100)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.on_diag, 10)
        self.create_subscription(Header, 'newcomers', self.on_newcomer, 100)

    def on_newcomer(self, msg) -> None:
        self.newcomers.append(msg.stamp.sec + msg.stamp.nanosec * 1e-9)

    def on_expr(self, msg) -> None:
        self.receipts.append((time.time(), msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, len(msg.faces)))

    def on_diag(self, msg) -> None:
        self.diag = node_status(msg) or self.diag


def baseline_executable(checkout: str) -> str:
    """A script that runs the fer_node of another checkout's colcon install tree with that tree's Python
    package first on the paths (its own code, this venv's libraries)."""
    install = Path(checkout).resolve() / 'install'
    exe = install / 'fer_ros' / 'lib' / 'fer_ros' / 'fer_node'
    if not exe.is_file():
        raise SystemExit(f'--baseline {checkout}: no {exe} (build that checkout: make setup, or colcon build)')
    script = Path(tempfile.mkdtemp(prefix='fer_bench_baseline_')) / 'fer_node'
    script.write_text(f'#!/bin/bash\nsource {install}/setup.bash\nexec {exe} "$@"\n')
    script.chmod(0o755)
    return str(script)


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds of the node process, all its threads (ONNX Runtime's included)."""
    times = proc.cpu_times()
    return times.user + times.system


def newcomer_latencies(receipts, appearances, faces: int, period_s: float) -> tuple[list[float], int]:
    """For each appearance stamp: ms from it to the receipt of the first message stamped at or after it
    with ``faces`` faces, within the half period the face stays; (latencies, appearances never reported)."""
    latencies, missed = [], 0
    for appeared in appearances:
        hits = [r for r, s, n in receipts if appeared - 1e-6 <= s < appeared + period_s / 2 and n >= faces]
        if hits:
            latencies.append((min(hits) - appeared) * 1000)
        else:
            missed += 1
    return latencies, missed


def run_case(probe: Probe, faces: int, seconds: float, rate: float, rss_period: float = 0.0,
             params: list[str] = (), executable: str | None = None, newcomer: bool = False,
             pan: bool = False) -> dict:
    overrides = dict(p.split(':=', 1) for p in params)
    logs = tempfile.mkdtemp(prefix='fer_bench_node_')
    # a baseline checkout runs with its own defaults (its backend vocabulary may differ; 'auto' is the CPU here)
    node = start_node(overrides if executable else {'backend': 'cpu', **overrides}, log_path=Path(logs) / 'node.log',
                      executable=executable)
    camera = None
    try:
        wait_until(lambda: node_is_ready(probe), 60, node, 'fer_node',
                   step=lambda: rclpy.spin_once(probe, timeout_sec=0.05))
        proc = psutil.Process(node.popen.pid)
        probe.receipts.clear()
        probe.newcomers.clear()
        probe.diag = {}
        camera_params = {'rate_hz': rate, 'duration_s': seconds, 'num_faces': faces}
        if newcomer:
            camera_params['newcomer_period_s'] = NEWCOMER_PERIOD_S
        if pan:
            camera_params['pan_px_s'] = PAN_PX_S
        camera = start_camera(camera_params, log_path=Path(logs) / 'camera.log')
        rss: list[tuple[float, float]] = []
        cpu: list[tuple[float, float, int]] = []     # (monotonic, node CPU seconds, messages received)
        t0 = time.monotonic()
        next_rss = t0
        while camera.popen.poll() is None:
            rclpy.spin_once(probe, timeout_sec=0.05)
            now = time.monotonic()
            if rss_period and now >= next_rss:
                rss.append((now - t0, proc.memory_info().rss / 2**20))
                next_rss += rss_period
            if probe.receipts and (not cpu or (len(cpu) == 1 and probe.receipts[-1][1] - probe.receipts[0][1]
                                                >= WARMUP_S)):
                cpu.append((now, cpu_seconds(proc), len(probe.receipts)))   # start, then after warm-up
        cpu.append((time.monotonic(), cpu_seconds(proc), len(probe.receipts)))     # the camera stopped
        end = time.monotonic() + 2.5       # the last frame and one more diagnostics message
        while time.monotonic() < end:
            rclpy.spin_once(probe, timeout_sec=0.05)
    finally:
        for child in (camera, node):
            if child is not None:
                child.stop()
    # drop the first second (warm-up: discovery, first inference, arena allocation)
    stamps = np.array([s for _, s, _ in probe.receipts])
    keep = stamps >= stamps.min() + WARMUP_S if stamps.size else stamps.astype(bool)
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
        # the node's own per-stage times (ms percentiles over its last 300 frames), e.g. latency_people_p50_ms
        'node_stage_ms': {k: float(v) for k, v in d.items() if k.startswith('latency_')},
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
    if len(cpu) >= 2 and cpu[-1][2] > cpu[-2][2]:
        (t_a, c_a, n_a), (t_b, c_b, n_b) = cpu[-2], cpu[-1]
        # the camera's rate over the window: CPU per frame x rate = share of one core at that rate
        result['cpu_ms_per_frame'] = (c_b - c_a) / (n_b - n_a) * 1000
        result['cpu_core_share'] = (c_b - c_a) / (t_b - t_a)
    if newcomer:
        appeared = [a for a in probe.newcomers if stamps.size and a >= stamps.min() + WARMUP_S]
        found, missed = newcomer_latencies(probe.receipts, appeared, faces, NEWCOMER_PERIOD_S)
        result['newcomer'] = {'appearances': len(appeared), 'never_reported': missed,
                              'latency_ms': percentiles(found) if found else {}, 'max_ms': max(found, default=None)}
    return result


def describe(case: dict, rate: float) -> str:
    lat, nan = case['latency_ms'], float('nan')
    text = (f"  received {case.get('received_fps', 0.0):.1f} frames/s of {rate:.0f}; processed "
            f"{case['processed_fps']:.1f} frames/s; latency stamp->expressions median {lat.get('p50', nan):.1f} ms, "
            f"p90 {lat.get('p90', nan):.1f}, p99 {lat.get('p99', nan):.1f}; CPU "
            f"{case.get('cpu_ms_per_frame', nan):.2f} ms per processed frame, "
            f"{100 * case.get('cpu_core_share', nan):.0f} % of a core at {rate:.0f} Hz; load {case['load_average']}"
            f" -> {case.get('load_average_end')}")
    if 'newcomer' in case:
        nc = case['newcomer']
        text += (f"\n  newcomer: {nc['appearances']} appearances, {nc['never_reported']} never reported; stamp -> "
                 f"both faces received median {nc['latency_ms'].get('p50', nan):.1f} ms, p90 "
                 f"{nc['latency_ms'].get('p90', nan):.1f}, p99 {nc['latency_ms'].get('p99', nan):.1f}, max "
                 f"{nc['max_ms'] if nc['max_ms'] is not None else nan:.1f}")
    return text + f"\n  node: {case['node_diagnostics']}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=float, default=20.0, help='stream length per case (default 20)')
    ap.add_argument('--faces', type=int, nargs='*', default=[1, 5], help='face counts to run (none: soak only)')
    ap.add_argument('--rate', type=float, default=30.0)
    ap.add_argument('--profiles', nargs='*', default=list(PROFILES), choices=list(PROFILES),
                    help='node parameter sets to run (default: all, side by side)')
    ap.add_argument('--newcomer-seconds', type=float, default=40.0,
                    help='length of the newcomer case per profile (0: none; default 40)')
    ap.add_argument('--pan-seconds', type=float, default=0.0,
                    help='length of the panning-camera case (1 face) per profile (0: none, the default)')
    ap.add_argument('--baseline', metavar='CHECKOUT',
                    help="also run another checkout's built fer_node (its defaults) as profile 'baseline'; its "
                         'messages must be this checkout\'s (a changed FaceExpression does not match across them)')
    ap.add_argument('--rounds', type=int, default=1, help='repeat every case this many times, interleaved')
    ap.add_argument('--soak-seconds', type=float, default=0.0, help='add a soak run of this length (e.g. 600)')
    ap.add_argument('--json', help='write all figures here')
    args = ap.parse_args(argv)
    profiles = {name: (PROFILES[name], None) for name in args.profiles}
    if args.baseline:
        profiles = {BASELINE: ([], baseline_executable(args.baseline)), **profiles}

    apply_profile()   # node and camera processes get the large-image Fast DDS profile
    rclpy.init()
    probe = Probe()
    results = {'machine': f'{platform.node()} {os.cpu_count()} cores', 'date': time.strftime('%Y-%m-%d %H:%M'),
               'load_average_at_start': [round(v, 2) for v in os.getloadavg()], 'baseline': args.baseline,
               'cases': []}
    cases = [(f, args.seconds, '') for f in args.faces]
    if args.newcomer_seconds > 0:
        cases.append((2, args.newcomer_seconds, 'newcomer'))
    if args.pan_seconds > 0:
        cases.append((1, args.pan_seconds, 'pan'))
    try:
        for round_ in range(args.rounds):
            for faces, seconds, special in cases:
                for profile, (params, exe) in profiles.items():
                    what = {'newcomer': 'newcomer (2nd face comes and goes)',
                            'pan': f'1 face, camera panning {PAN_PX_S:g} px/s'}.get(special, f'{faces} face(s)')
                    print(f'bench-node [{profile}] round {round_ + 1}: {what}, {seconds:.0f} s at '
                          f'{args.rate:.0f} Hz ...', flush=True)
                    load = [round(v, 2) for v in os.getloadavg()]
                    case = run_case(probe, faces, seconds, args.rate, params=params, executable=exe,
                                    newcomer=special == 'newcomer', pan=special == 'pan')
                    case.update(profile=profile, round=round_ + 1, load_average=load,
                                load_average_end=[round(v, 2) for v in os.getloadavg()],
                                case=special or f'{faces}_face' + ('s' if faces > 1 else ''))
                    results['cases'].append(case)
                    print(describe(case, args.rate), flush=True)
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
    write_report(args.json, results, 'bench-node')
    return 0


if __name__ == '__main__':
    sys.exit(main())
