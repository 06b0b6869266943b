"""`make soak`: fer_node for an hour under a camera that misbehaves, measured from another process.

Two processes: fer_node (default model, ONNX Runtime) and this one, which is the camera (640x480 bgr8
at 30 Hz, one face) and the observer (expressions, command, /diagnostics; the node's RSS via psutil).
Every 10th frame is malformed, rotating through ten kinds (MALFORMED). During the run the camera
restarts once (its participant goes away and comes back) and max_rate_hz is changed twice (to 10 Hz
and back to 0). Checks, printed with the figures:

- the node never exits;
- its RSS grows by less than 10 MB from the end of the warm-up (10 % of the run, at most 5 min) to the end;
- frames_received = processed + dropped + each error/skip count, exactly (the node's diagnostics);
- no gap between consecutive `expressions` messages longer than 1 s.

    scripts/with_ros.sh python -m benchmarks.soak [--seconds 3600] [--json soak.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from fer_ros.hri.stamps import to_stamp
from fer_ros.sample_frames import sample_frame
from fer_ros.util.paths import find_executable
from fer_ros.util.processes import LoggedProcess, node_status

# Malformed frame kinds, in rotation, and what the node must count them as. The stamp kinds are real
# frames with a bad stamp; 'tiny' is a valid 2x2 frame (processed, or a pipeline error: both counted).
MALFORMED = ('unknown_encoding', 'truncated', 'zero_size', 'huge_header', 'short_step', 'odd_yuv422',
             'stamp_0.5s_old', 'stamp_0.9s_future', 'stamp_100s_back', 'tiny')
OUTCOME_KEYS = ('frames_processed', 'frames_dropped', 'decode_errors', 'pipeline_errors', 'out_of_order',
                'future_stamp', 'clock_jump', 'bad_stamp')
MAX_GAP_S = 1.0
MAX_RSS_GROWTH_MB = 10.0


def _image(height, width, encoding, step, data, stamp_s, frame_id='soak_cam'):
    from sensor_msgs.msg import Image
    msg = Image(height=height, width=width, encoding=encoding, step=step, data=data)
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = to_stamp(stamp_s)
    return msg


def frame_message(kind: str, good: np.ndarray, stamp_s: float):
    """The Image to publish for ``kind`` ('good' or one of MALFORMED), stamped ``stamp_s``."""
    h, w = good.shape[:2]
    data = good.tobytes()
    if kind == 'good':
        return _image(h, w, 'bgr8', w * 3, data, stamp_s)
    if kind == 'unknown_encoding':
        return _image(h, w, 'bayer_weird16', w * 3, data, stamp_s)
    if kind == 'truncated':
        return _image(h, w, 'bgr8', w * 3, data[: w * 3 * 10], stamp_s)
    if kind == 'zero_size':
        return _image(0, 0, 'bgr8', 0, b'', stamp_s)
    if kind == 'huge_header':
        return _image(8000, 8000, 'mono8', 8000, b'\x00' * 16, stamp_s)
    if kind == 'short_step':
        return _image(h, w, 'bgr8', w, data, stamp_s)
    if kind == 'odd_yuv422':
        return _image(3, 3, 'yuv422', 6, b'\x80' * 18, stamp_s)
    if kind == 'stamp_0.5s_old':
        return _image(h, w, 'bgr8', w * 3, data, stamp_s - 0.5)
    if kind == 'stamp_0.9s_future':
        return _image(h, w, 'bgr8', w * 3, data, stamp_s + 0.9)
    if kind == 'stamp_100s_back':
        return _image(h, w, 'bgr8', w * 3, data, stamp_s - 100.0)
    if kind == 'tiny':
        return _image(2, 2, 'bgr8', 6, bytes(12), stamp_s)
    raise ValueError(f'unknown frame kind {kind!r}')


class Observer:
    """Subscribes to the node's outputs in its own context and thread."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        from fer_ros.msg import FaceExpressionArray, HriCommand
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node('fer_soak_observer', context=self.context)
        self.expr_times: list[float] = []
        self.faces: list[int] = []
        self.commands: dict[str, int] = {}
        self.diag: dict[str, str] = {}
        self.diag_level = 0
        self.node.create_subscription(FaceExpressionArray, 'expressions', self._on_expr, 100)
        self.node.create_subscription(HriCommand, 'command', self._on_cmd, 100)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def _on_expr(self, msg) -> None:
        self.expr_times.append(time.monotonic())
        self.faces.append(len(msg.faces))

    def _on_cmd(self, msg) -> None:
        self.commands[msg.command] = self.commands.get(msg.command, 0) + 1

    def _on_diag(self, msg) -> None:
        values = node_status(msg)
        if values:
            self.diag_level = values.pop('_level')
            values.pop('_message')
            self.diag = values

    def set_max_rate(self, value: float) -> bool:
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters
        client = self.node.create_client(SetParameters, '/fer_node/set_parameters')
        if not client.wait_for_service(timeout_sec=10):
            return False
        future = client.call_async(SetParameters.Request(parameters=[Parameter(
            name='max_rate_hz', value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))]))
        deadline = time.monotonic() + 10
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.node.destroy_client(client)
        return future.done() and future.result().results[0].successful

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2)
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


class Camera:
    """A camera participant of its own (a context), so that it can restart like a real driver."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node('fer_soak_camera', context=self.context)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.pub = self.node.create_publisher(Image, 'image', qos)

    def wait_matched(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.pub.get_subscription_count() > 0

    def close(self) -> None:
        self.node.destroy_node()
        self.context.try_shutdown()


def run(seconds: float, log_path: str, rate: float = 30.0) -> dict:
    # the node's log goes to a file: a pipe nobody reads would block the node once full
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    logged = LoggedProcess([find_executable('fer_node'), '--ros-args', '-p', 'backend:=cpu'], Path(log_path))
    node = logged.popen
    observer, camera = Observer(), None
    sent = {'good': 0, **dict.fromkeys(MALFORMED, 0)}
    rss: list[tuple[float, float]] = []
    events: list[str] = []
    restart_window = (float('nan'), float('nan'))    # monotonic: camera gone .. its first frame again
    t0 = time.monotonic()
    try:
        camera = Camera()
        if not camera.wait_matched(120):
            raise RuntimeError('fer_node did not subscribe to /image within 120 s')
        proc = psutil.Process(node.pid)
        good = sample_frame(1, size=(640, 480), seed=0)[0]
        period = 1.0 / rate
        t0 = time.monotonic()
        plan = {'rate_10': seconds * 0.3, 'rate_0': seconds * 0.3 + min(60.0, seconds * 0.1),
                'restart': seconds * 0.6}
        next_rss, i = t0, 0
        while True:
            now = time.monotonic()
            elapsed = now - t0
            if elapsed >= seconds:
                break
            if node.poll() is not None:
                events.append(f'{elapsed:.1f} s: fer_node exited with {node.returncode}')
                break
            if 'restart' in plan and elapsed >= plan['restart']:
                del plan['restart']
                camera.close()
                camera = Camera()
                matched = camera.wait_matched(30)
                restart_window = (now, time.monotonic())
                events.append(f'{elapsed:.1f} s: camera restarted (matched again after '
                              f'{time.monotonic() - now:.2f} s: {matched})')
            for name, value in (('rate_10', 10.0), ('rate_0', 0.0)):
                if name in plan and elapsed >= plan[name]:
                    del plan[name]
                    ok = observer.set_max_rate(value)
                    events.append(f'{elapsed:.1f} s: max_rate_hz := {value:g} ({"accepted" if ok else "REFUSED"})')
            kind = MALFORMED[(i // 10) % len(MALFORMED)] if i % 10 == 9 else 'good'
            camera.pub.publish(frame_message(kind, good, time.time()))
            sent[kind] += 1
            i += 1
            if now >= next_rss:
                rss.append((elapsed, proc.memory_info().rss / 2**20))
                next_rss += 5.0
            time.sleep(max(0.0, t0 + i * period - time.monotonic()))
        end = time.monotonic() + 3.0      # the last frames and one more diagnostics message
        while time.monotonic() < end:
            time.sleep(0.1)
        alive = node.poll() is None
    except BaseException:
        alive = False
        raise
    finally:
        if camera is not None:
            camera.close()
        code = logged.stop()
        observer.close()
    return summarize(seconds, sent, rss, events, observer, alive, code, logged.output(), t0, restart_window)


def summarize(seconds, sent, rss, events, observer, alive, code, node_log, t0=0.0,
              restart_window=(float('nan'), float('nan'))) -> dict:
    d = observer.diag
    counts = {k: int(d.get(k, 0)) for k in OUTCOME_KEYS}
    received = int(d.get('frames_received', 0))
    times = np.array(observer.expr_times)
    gaps = np.diff(times) if times.size > 1 else np.zeros(0)
    warm_s = min(300.0, seconds * 0.1)
    warm = [m for t, m in rss if t >= warm_s]
    result = {
        'seconds': seconds, 'load_average': os.getloadavg(), 'cpus': os.cpu_count(),
        'sent': sent, 'sent_total': sum(sent.values()), 'frames_received': received, 'node_counts': counts,
        'expressions_received': int(times.size),
        'mean_faces': float(np.mean(observer.faces)) if observer.faces else 0.0,
        'commands_received': observer.commands, 'events': events,
        'max_output_gap_s': float(gaps.max()) if gaps.size else float('nan'),
        'output_gaps_over_1s': int((gaps > MAX_GAP_S).sum()),
        # (seconds into the run, gap length, whether the camera was restarting then: no input to answer)
        'long_gaps': [(round(float(times[i] - t0), 2), round(float(gaps[i]), 3),
                       bool(times[i] <= restart_window[1] and times[i + 1] >= restart_window[0]))
                      for i in np.flatnonzero(gaps > MAX_GAP_S)],
        'rss_mb': {'first': rss[0][1] if rss else None, 'after_warmup': warm[0] if warm else None,
                   'last': rss[-1][1] if rss else None, 'max': max((m for _, m in rss), default=None),
                   'warmup_s': warm_s, 'samples': len(rss)},
        'node_exit_code': code,
    }
    result['rss_growth_after_warmup_mb'] = (warm[-1] - warm[0]) if len(warm) > 1 else float('nan')
    result['checks'] = {
        'no_crash': bool(alive) and code == 0,
        'rss_growth_under_10mb': result['rss_growth_after_warmup_mb'] < MAX_RSS_GROWTH_MB,
        'counts_add_up': bool(d) and received == sum(counts.values()),
        'no_output_gap_over_1s': result['output_gaps_over_1s'] == 0,
        'no_output_gap_over_1s_while_frames_came': not any(not during for _, _, during in result['long_gaps']),
    }
    if not result['checks']['no_crash']:
        result['node_log_tail'] = node_log[-3000:]
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=float, default=3600.0, help='length of the run (default 3600)')
    ap.add_argument('--json', help='write the figures here')
    ap.add_argument('--node-log', default='soak_node.log', help="the node's output (default %(default)s)")
    args = ap.parse_args(argv)
    print(f'soak: {args.seconds:.0f} s, 640x480 bgr8 at 30 Hz, one face, every 10th frame malformed; '
          f'load average at start {os.getloadavg()}', flush=True)
    result = run(args.seconds, args.node_log)
    c, r = result['node_counts'], result['rss_mb']
    print(f"soak: sent {result['sent_total']} frames ({result['sent']}); node received {result['frames_received']}: "
          f"{c}", flush=True)
    print(f"soak: expressions {result['expressions_received']} (mean faces {result['mean_faces']:.2f}); commands "
          f"{result['commands_received']}; max output gap {result['max_output_gap_s']:.3f} s "
          f"({result['output_gaps_over_1s']} over 1 s)", flush=True)
    print(f"soak: RSS first {r['first']} MB, after {r['warmup_s']:.0f} s warm-up {r['after_warmup']} MB, "
          f"last {r['last']} MB, max {r['max']} MB: growth {result['rss_growth_after_warmup_mb']:.1f} MB", flush=True)
    for start, length, during in result['long_gaps']:
        print(f"soak: output gap of {length:.3f} s at {start:.1f} s{' (camera restarting)' if during else ''}",
              flush=True)
    for event in result['events']:
        print(f'soak: {event}', flush=True)
    print(f"soak: load average at end {result['load_average']}; checks {result['checks']}", flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return 0 if all(result['checks'].values()) else 1


if __name__ == '__main__':
    sys.exit(main())
