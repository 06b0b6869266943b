"""`make bench-stop`: does a scared face make the robot STOP, seen from a controller's process?

Three processes: fer_camera streams a pattern of the repository's expression fixtures (assets/README.md:
scared_face.jpg, fear_surprise_face.jpg, no_face.jpg; 640x480 bgr8 at --rate Hz), fer_node (installed,
default parameters), and this one, subscribed to `expressions` and `command`. Every trial starts a
fresh node. Reported per scenario: trials in which STOP arrived; the time from the stamp of the first
frame the node processed to the receipt of STOP, and from the stamp of the first frame in which it
published the face (finding a new face is the full scan's job: docs/performance.md); median, p90, max
(camera stamps and receipt times are the same wall clock). Scenarios:

    clean        every frame shows the scared face
    blank10/5/3  1 frame in 10 / 5 / 3 without the face (the detector misses it)
    wobble1:1    scared_face and fear_surprise_face alternating (the winner flips between scared and
                 surprised; fear stays high), 3:1 likewise
    hold1:1      STOP first, then --hold-seconds of 1:1 wobble: any change away from STOP is a release

Then, with STOP latched on a node streaming the clean scenario: the time a late joiner needs to receive
the current command (contract QoS: transient-local; and default QoS), and the time a consumer needs to
learn that the node is gone (kill -9) or frozen (SIGSTOP): middleware deadline / liveliness events and
the local deadline check of fer_ros.examples.command_watch.

    scripts/with_ros.sh python -m benchmarks.stop [--trials 10] [--seconds 6] [--json bench/stop.json]

A benchmark, not a test: it prints figures with the machine's load; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

import rclpy
from rclpy.node import Node

from benchmarks import write_report
from fer_ros.msg import FaceExpressionArray, HriCommand
from fer_ros.ros.command_channel import command_qos, subscription_event_callbacks
from fer_ros.ros.fastdds_profile import apply_profile
from fer_ros.util.paths import find_asset
from fer_ros.util.processes import node_is_ready, start_camera, start_node, wait_until
from fer_ros.util.stats import summary

SCARED, FEAR_SURPRISE, NO_FACE = 'scared_face.jpg', 'fear_surprise_face.jpg', 'no_face.jpg'
SCENARIOS = {
    'clean': [SCARED],
    'blank10': [SCARED] * 9 + [NO_FACE],
    'blank5': [SCARED] * 4 + [NO_FACE],
    'blank3': [SCARED] * 2 + [NO_FACE],
    'wobble1:1': [SCARED, FEAR_SURPRISE],
    'wobble3:1': [SCARED] * 3 + [FEAR_SURPRISE],
}
HOLD_PATTERN = [SCARED, FEAR_SURPRISE]
CONTRACT_DEADLINE_S = 2.0      # what a consumer requests: the node's offer with the default heartbeat
LIVELINESS_WAIT_S = 30.0       # how long to wait for the events after a kill (Fast DDS' participant lease: 20 s)


def now_s() -> float:
    return time.time()


def stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class Probe(Node):
    """Records the stamps of the node's first processed frame and first face, and every command with its
    receipt time. (It does not subscribe to the images: the camera starts when the first subscriber
    matches, and that must be the node, or the node would miss the first frames.)"""

    def __init__(self) -> None:
        super().__init__('fer_bench_stop')
        self.first_frame: float | None = None
        self.first_face: float | None = None
        self.since = 0.0
        self.commands: list[tuple[float, object]] = []
        self.create_subscription(HriCommand, 'command', self._on_command, 100)
        self.create_subscription(FaceExpressionArray, 'expressions', self._on_frame, 100)

    def _on_command(self, msg) -> None:
        if stamp_s(msg) >= self.since:
            self.commands.append((now_s(), msg))

    def _on_frame(self, msg) -> None:
        if stamp_s(msg) < self.since:          # a late message of the previous trial's node
            return
        if self.first_frame is None:
            self.first_frame = stamp_s(msg)
        if self.first_face is None and msg.faces:
            self.first_face = stamp_s(msg)

    def reset(self, since: float = 0.0) -> None:
        """Forget everything; from now on only messages stamped ``since`` or later count."""
        self.first_frame = self.first_face = None
        self.since = since
        self.commands.clear()

    def spin_for(self, seconds: float, until=lambda: False) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            rclpy.spin_once(self, timeout_sec=0.02)

    def stops(self) -> list[tuple[float, object]]:
        return [(t, m) for t, m in self.commands if m.command == 'STOP']


def assets(pattern: list[str]) -> list[str]:
    return [find_asset(name) for name in pattern]


class Trial:
    """A fresh node and a camera streaming ``pattern``; stop() ends both."""

    def __init__(self, probe: Probe, pattern: list[str], rate: float, logs: Path) -> None:
        self.probe = probe
        probe.reset()
        self.node = start_node({}, log_path=logs / 'node.log')
        self.camera = None
        wait_until(lambda: node_is_ready(probe), 90, self.node, 'fer_node',
                   step=lambda: rclpy.spin_once(probe, timeout_sec=0.05))
        probe.reset(since=now_s())
        self.camera = start_camera({'rate_hz': rate, 'duration_s': 0.0, 'images': assets(pattern), 'frame_id': 'bench'},
                                   log_path=logs / 'camera.log')

    def stop(self) -> None:
        for child in (self.camera, self.node):
            if child is not None:
                child.stop()


def run_scenario(probe: Probe, name: str, trials: int, seconds: float, rate: float, logs: Path) -> dict:
    from_frame, from_face, fired = [], [], 0
    for k in range(trials):
        trial = Trial(probe, SCENARIOS[name], rate, logs)
        latency = None
        try:
            probe.spin_for(seconds + 5.0, until=lambda: probe.first_frame is not None and bool(probe.stops()))
            if probe.first_frame is not None and probe.stops():
                latency = probe.stops()[0][0] - probe.first_frame
                face_latency = probe.stops()[0][0] - probe.first_face if probe.first_face else None
        finally:
            trial.stop()
        if latency is not None and latency <= seconds:
            fired += 1
            from_frame.append(latency * 1e3)
            if face_latency is not None:
                from_face.append(face_latency * 1e3)
        print(f'  {name} trial {k + 1}/{trials}: ' + (f'STOP {latency * 1e3:.0f} ms after the first frame'
                                                      if latency is not None else 'no STOP'), flush=True)
    return {'trials': trials, 'stop_fired': fired, 'first_frame_to_stop_ms': summary(from_frame),
            'first_face_to_stop_ms': summary(from_face)}


def run_hold(probe: Probe, trials: int, hold_seconds: float, rate: float, logs: Path) -> dict:
    """STOP, then hold_seconds of 1:1 wobble: count changes away from STOP (releases)."""
    releases, stopped = [], 0
    for _ in range(trials):
        trial = Trial(probe, HOLD_PATTERN, rate, logs)
        try:
            probe.spin_for(30.0, until=lambda: bool(probe.stops()))
            if not probe.stops():
                releases.append(None)
                continue
            stopped += 1
            t_stop = probe.stops()[0][0]
            probe.spin_for(hold_seconds)
            later = [m.command for t, m in probe.commands if t > t_stop and not m.heartbeat and m.command != 'STOP']
            releases.append(len(later))
        finally:
            trial.stop()
    return {'trials': trials, 'stop_fired': stopped, 'hold_seconds': hold_seconds,
            'trials_with_a_release': sum(1 for r in releases if r), 'changes_after_stop': releases}


def _first_message_ms(probe: Probe, qos, timeout: float = 5.0) -> float | None:
    """Subscribe anew to `command` and time the first message (None: nothing within timeout)."""
    got: list[float] = []
    start = now_s()
    sub = probe.create_subscription(HriCommand, 'command', lambda m: got.append(now_s()), qos)
    try:
        probe.spin_for(timeout, until=lambda: bool(got))
    finally:
        probe.destroy_subscription(sub)
    return (got[0] - start) * 1e3 if got else None


def contract_subscription(probe: Probe, events: dict, deadline_s: float):
    """A subscription with the contract's QoS and event callbacks recording when each event came first."""
    def mark(kind):
        return lambda info: events.setdefault(kind, now_s())

    def liveliness(info):
        if info.alive_count == 0:
            events.setdefault('liveliness', now_s())
    return probe.create_subscription(
        HriCommand, 'command', lambda m: events.__setitem__('last_message', now_s()), command_qos(deadline_s),
        event_callbacks=subscription_event_callbacks(deadline=mark('deadline'), liveliness=liveliness,
                                                     incompatible_qos=mark('incompatible_qos')))


def run_contract(probe: Probe, repeats: int, rate: float, logs: Path) -> dict:
    out: dict = {'late_joiner_contract_ms': [], 'late_joiner_default_ms': [], 'killed': [], 'frozen': []}
    for kind in ('killed', 'frozen'):
        for _ in range(repeats):
            trial = Trial(probe, SCENARIOS['clean'], rate, logs)
            try:
                probe.spin_for(30.0, until=lambda: bool(probe.stops()))
                if not probe.stops():
                    continue
                if kind == 'killed':      # late joiners while STOP is latched
                    out['late_joiner_contract_ms'].append(_first_message_ms(probe, command_qos(CONTRACT_DEADLINE_S)))
                    out['late_joiner_default_ms'].append(_first_message_ms(probe, 10))
                events: dict = {}
                sub = contract_subscription(probe, events, CONTRACT_DEADLINE_S)
                probe.spin_for(3.0, until=lambda: 'last_message' in events)
                trial.camera.stop()
                t_signal = now_s()
                os.kill(trial.node.popen.pid, signal.SIGKILL if kind == 'killed' else signal.SIGSTOP)
                probe.spin_for(LIVELINESS_WAIT_S, until=lambda: 'deadline' in events and 'liveliness' in events)

                def after_signal(key, offset=0.0):
                    return max(0.0, events[key] + offset - t_signal) * 1e3 if key in events else None
                out[kind].append({   # the local check: the last message + the deadline (the consumer's timer)
                    'deadline_event_ms': after_signal('deadline'), 'liveliness_event_ms': after_signal('liveliness'),
                    'local_check_ms': after_signal('last_message', CONTRACT_DEADLINE_S),
                    'incompatible_qos': 'incompatible_qos' in events})
                if kind == 'frozen':
                    os.kill(trial.node.popen.pid, signal.SIGCONT)
                probe.destroy_subscription(sub)
            finally:
                trial.stop()
    summary_out = {}
    for key in ('late_joiner_contract_ms', 'late_joiner_default_ms'):
        summary_out[key] = summary([v for v in out[key] if v is not None])
        summary_out[f'{key}_never'] = sum(v is None for v in out[key])
    for kind in ('killed', 'frozen'):
        for key in ('deadline_event_ms', 'liveliness_event_ms', 'local_check_ms'):
            values = [r[key] for r in out[kind]]
            summary_out[f'{kind}_{key}'] = summary([v for v in values if v is not None])
            summary_out[f'{kind}_{key}_never'] = sum(v is None for v in values)
        summary_out[f'{kind}_incompatible_qos'] = sum(r['incompatible_qos'] for r in out[kind])
    return summary_out


def fmt(s: dict) -> str:
    if not s or not s.get('n'):
        return 'n/a'
    return f"median {s['median']:.0f} ms, p90 {s['p90']:.0f}, max {s['max']:.0f} (n={s['n']})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--trials', type=int, default=10, help='trials per scenario (default 10)')
    ap.add_argument('--seconds', type=float, default=6.0,
                    help='a trial without STOP within this long fails (default 6)')
    ap.add_argument('--hold-seconds', type=float, default=10.0,
                    help='wobble after STOP in the hold scenario (default 10)')
    ap.add_argument('--rate', type=float, default=30.0)
    ap.add_argument('--scenarios', nargs='*', default=[*SCENARIOS, 'hold1:1', 'contract'],
                    choices=[*SCENARIOS, 'hold1:1', 'contract'])
    ap.add_argument('--json', help='write all figures here')
    args = ap.parse_args(argv)

    apply_profile()
    rclpy.init()
    probe = Probe()
    logs = Path(tempfile.mkdtemp(prefix='fer_bench_stop_'))
    results = {'machine': f'{platform.node()} {os.cpu_count()} cores', 'date': time.strftime('%Y-%m-%d %H:%M'),
               'load_average_at_start': [round(v, 2) for v in os.getloadavg()], 'rate_hz': args.rate,
               'scenarios': {}}
    try:
        for name in args.scenarios:
            print(f'bench-stop: {name} ...', flush=True)
            if name in SCENARIOS:
                r = run_scenario(probe, name, args.trials, args.seconds, args.rate, logs)
                print(f"  {name}: STOP in {r['stop_fired']}/{r['trials']}; first frame's stamp -> STOP received "
                      f"{fmt(r['first_frame_to_stop_ms'])}; first face's stamp -> STOP "
                      f"{fmt(r['first_face_to_stop_ms'])}", flush=True)
            elif name == 'hold1:1':
                r = run_hold(probe, max(1, args.trials // 2), args.hold_seconds, args.rate, logs)
                print(f"  hold1:1: STOP in {r['stop_fired']}/{r['trials']}; released during {args.hold_seconds:g} s "
                      f"of wobble in {r['trials_with_a_release']}", flush=True)
            else:
                r = run_contract(probe, max(1, args.trials // 2), args.rate, logs)
                for key in [k for k in r if k.endswith('_ms')]:
                    print(f"  {key}: {fmt(r[key])}; never: {r[key + '_never']}", flush=True)
            results['scenarios'][name] = r
            results['scenarios'][name]['load_average'] = [round(v, 2) for v in os.getloadavg()]
    finally:
        probe.destroy_node()
        rclpy.try_shutdown()
    write_report(args.json, results, 'bench-stop')
    print(f'bench-stop: node logs in {logs}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
