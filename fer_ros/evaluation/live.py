"""Live mode: replay a bag into the real fer_node (a separate process) and record what it publishes.

Three parties, two processes:
- the node: the installed ``fer_node`` executable, started with the deployed parameter file plus
  overrides, its topics remapped under ``/fer_eval`` so a robot's own topics are never touched;
- the player + recorder: one rclpy node in *this* process. It waits until the node's image
  subscription and its output publishers are matched (no sleeping on discovery), publishes each bag
  image (CDR bytes as stored; restamped only when the header stamps are unusable, see StampClock) at
  its recorded time divided by ``speed``, and records every expressions / command / diagnostics
  message with its receive time.

Everything is written to a rosbag2 (``<out>/node_output``), together with a ``/fer_eval/sent`` topic
(std_msgs/Header: the image stamp, frame index in frame_id, logged at the publish time), and the
evaluation reads that bag back: outputs match frames through the header stamp the node copies from
the image; end-to-end latency = receive time of the expressions message - publish time of its image
(both on this process's clock).
"""
from __future__ import annotations

import bisect
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fer_ros.core.types import Command, FaceResult, FrameResult
from fer_ros.hri.stamps import StampClock
from fer_ros.util.paths import find_executable
from fer_ros.util.processes import ChildExited, node_status, ros_args, start_node, wait_until

from .bag_io import BagReader, stamp_ns
from .bag_types import COMPRESSED_IMAGE, make_typestore
from .bag_writer import BagWriter
from .report import NO_OUTPUT, FrameRecord

NAMESPACE = '/fer_eval'
IMAGE_TOPIC = {'sensor_msgs/msg/Image': f'{NAMESPACE}/image',
               COMPRESSED_IMAGE: f'{NAMESPACE}/image/compressed'}
EXPRESSIONS = f'{NAMESPACE}/expressions'
COMMAND = f'{NAMESPACE}/command'
DIAGNOSTICS = '/diagnostics'
SENT = f'{NAMESPACE}/sent'
OUTPUT_TYPES = {EXPRESSIONS: 'fer_ros/msg/FaceExpressionArray', COMMAND: 'fer_ros/msg/HriCommand',
                DIAGNOSTICS: 'diagnostic_msgs/msg/DiagnosticArray', SENT: 'std_msgs/msg/Header'}
OUTPUT_BAG = 'node_output'
NODE_LOG = 'node.log'


class LiveError(RuntimeError):
    """Live mode cannot run or the node failed; the text says why (with the node's log tail)."""


@dataclass
class LiveOptions:
    params_file: str | None              # fer_node parameter YAML given to the node (None: its defaults)
    overrides: dict[str, str]            # parameter name -> value text (-p name:=value)
    out_dir: Path
    speed: float = 1.0                   # playback speed factor
    lockstep: bool = False               # publish a frame only once the node answered the previous one
    startup_timeout_s: float = 60.0      # node start (model load) and discovery
    idle_timeout_s: float = 3.0          # after the last frame: stop when no output for this long
    diagnostics_wait_s: float = 2.5      # then wait this long at most for a final /diagnostics message
    max_frames: int | None = None
    progress: bool = True
    storage: str = 'mcap'                # storage of the node-output bag
    node_executable: str | None = None   # default: find lib/fer_ros/fer_node in the ament prefixes


@dataclass
class LiveRun:
    records: list[FrameRecord]
    summary: dict                        # report.json['live']
    backend: str


def find_node_executable() -> Path:
    """The installed lib/fer_ros/fer_node (see fer_ros.util.paths.find_executable).

    Raises:
        LiveError: not built / not sourced.
    """
    try:
        return Path(find_executable('fer_node'))
    except FileNotFoundError as exc:
        raise LiveError(f'live mode needs the built node: {exc}; then run '
                        '`bash scripts/with_ros.sh fer-eval-bag ... --mode live`') from None


def node_arguments(overrides: dict[str, str], msgtype: str, lockstep: bool = False) -> tuple[dict, dict]:
    """fer_node's (parameters, remaps): the overrides, the input transport, its topics under /fer_eval.
    Lockstep (reproducible) runs scan whole frames on the frame they are due on, as the offline mode does,
    unless the overrides say otherwise."""
    params: dict = dict(overrides, image_transport='compressed' if msgtype == COMPRESSED_IMAGE else 'raw')
    if lockstep:
        params.setdefault('detector_background_scan', False)
    remaps = {name: f'{NAMESPACE}/{name}' for name in ('image', 'image/compressed', 'expressions', 'command',
                                                        'debug_image')}
    return params, remaps


def node_command(exe: Path, params_file: str | None, overrides: dict[str, str], msgtype: str,
                 lockstep: bool = False) -> list[str]:
    """The fer_node command line live mode runs (for the report)."""
    params, remaps = node_arguments(overrides, msgtype, lockstep)
    return [str(exe), *ros_args(params, remaps, params_file)]


class _PlayerRecorder:
    """rclpy side: one publisher (bag images) and raw subscriptions recording (topic, receive ns, CDR)."""

    def __init__(self, msgtype: str):
        try:
            import rclpy
            from diagnostic_msgs.msg import DiagnosticArray
            from rclpy.executors import SingleThreadedExecutor
            from rclpy.node import Node
            from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
            from sensor_msgs.msg import CompressedImage, Image

            from fer_ros.msg import FaceExpressionArray, HriCommand
        except ImportError as exc:
            raise LiveError('live mode needs ROS 2 (rclpy, sensor_msgs, diagnostic_msgs) and the built fer_ros '
                            f'messages; run it through scripts/with_ros.sh after `make setup` ({exc})') from None
        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node('fer_eval_bag', context=self.context)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE)
        image_cls = CompressedImage if msgtype == COMPRESSED_IMAGE else Image
        # Reliable publisher: also matches the node's default best-effort (sensor-data) subscription.
        self.publisher = self.node.create_publisher(image_cls, IMAGE_TOPIC[msgtype], reliable)
        self.received: list[tuple[str, int, bytes]] = []
        self.last_expressions_ns = 0
        self.answers = 0                  # expressions messages received
        self._lock = threading.Lock()
        self.subscriptions = [
            self.node.create_subscription(cls, topic, self._recorder(topic), reliable, raw=True)
            for topic, cls in ((EXPRESSIONS, FaceExpressionArray), (COMMAND, HriCommand),
                               (DIAGNOSTICS, DiagnosticArray))]
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, name='fer_eval_spin', daemon=True)
        self._thread.start()

    def _recorder(self, topic: str):
        def callback(data: bytes) -> None:
            now = time.time_ns()
            with self._lock:
                self.received.append((topic, now, data))
                if topic == EXPRESSIONS:
                    self.last_expressions_ns = now
                    self.answers += 1
        return callback

    def _spin(self) -> None:
        while self._running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def matched(self) -> bool:
        """The node subscribes to our images and our recorders are matched with its outputs."""
        return (self.publisher.get_subscription_count() > 0
                and all(sub.get_publisher_count() > 0 for sub in self.subscriptions))

    def snapshot(self) -> list[tuple[str, int, bytes]]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)


@dataclass
class _Sent:
    index: int
    t_s: float           # input log time - input bag start
    stamp: int           # stamp published (ns)
    sent_ns: int         # wall time just before publishing


def run_live(reader: BagReader, topic: str, options: LiveOptions) -> LiveRun:
    """Replay ``topic`` of ``reader`` into a freshly started fer_node and evaluate its outputs.

    Raises:
        LiveError: ROS or the node is unavailable, the node fails or never comes up (with its log tail).
    """
    from tqdm import tqdm

    info = reader.require_topic(topic)
    exe = Path(options.node_executable) if options.node_executable else find_node_executable()
    try:
        typestore = make_typestore(require_fer=True)    # to record and read back the node's messages
    except FileNotFoundError as exc:
        raise LiveError(f'live mode needs the fer_ros message definitions: {exc}') from None
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag_path = out / OUTPUT_BAG
    if bag_path.exists():      # our own output of an earlier run into the same folder
        shutil.rmtree(bag_path)
    recorder = _PlayerRecorder(info.msgtype)
    node = None
    sent: list[_Sent] = []
    clock = StampClock()
    try:
        params, remaps = node_arguments(options.overrides, info.msgtype, options.lockstep)
        node = start_node(params, remaps, options.params_file, out / NODE_LOG, exe)
        try:
            wait_until(recorder.matched, options.startup_timeout_s, node,
                       f'fer_node to connect (node log {node.log_path})')
        except (ChildExited, TimeoutError) as exc:
            raise LiveError(str(exc)) from None

        total = info.count if options.max_frames is None or info.count is None else min(info.count, options.max_frames)
        bar = tqdm(total=total, unit='frame', desc=f'playing ×{options.speed:g}', disable=not options.progress)
        first_log = None
        start = 0.0
        first_ns = reader.start_ns or 0      # None only for an empty bag, which has no message below
        try:
            for index, m in enumerate(reader.messages([topic], deserialize=False)):
                if options.max_frames is not None and index >= options.max_frames:
                    break
                msg = reader.deserialize(m.msg, m.msgtype)
                header = stamp_ns(msg)
                stamp = clock.effective(header, m.log_ns)
                data = m.msg if stamp == header else reader.serialize(_restamped(msg, stamp), m.msgtype)
                if first_log is None:
                    first_log, start = m.log_ns, time.monotonic() + 0.1
                delay = start + (m.log_ns - first_log) * 1e-9 / options.speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if node.popen.poll() is not None:
                    raise LiveError(f'fer_node exited with status {node.popen.returncode} during playback:\n'
                                    + node.tail())
                if options.lockstep and sent:
                    _wait_for_answers(recorder, len(sent), sent[-1].sent_ns, options.idle_timeout_s)
                sent.append(_Sent(index, (m.log_ns - first_ns) * 1e-9, stamp, time.time_ns()))
                recorder.publisher.publish(bytes(data))
                bar.update()
        finally:
            bar.close()
        _drain(recorder, sent, options.idle_timeout_s, typestore)
        _wait_for_diagnostics(recorder, options.diagnostics_wait_s)
        play_s = (sent[-1].sent_ns - sent[0].sent_ns) * 1e-9 if len(sent) > 1 else 0.0
    finally:
        received = recorder.snapshot()
        recorder.close()
        node_status = node.stop() if node is not None else None
    if clock.replaced:
        reader.warnings.append(f'{clock.replaced} frame(s) had a header stamp not after the previous one; they '
                               'were published with stamps derived from the log time')
    _write_output_bag(bag_path, options.storage, typestore, sent, received)
    records, diagnostics, backend = evaluate_output_bag(bag_path, sent)
    answered = sum(r.status != NO_OUTPUT for r in records)
    summary = {
        'published': len(sent), 'answered': answered, 'dropped': len(sent) - answered,
        'drop_rate': (len(sent) - answered) / len(sent) if sent else None, 'speed': options.speed,
        'lockstep': options.lockstep,
        'publish_rate_hz': (len(sent) - 1) / play_s if play_s > 0 else None,
        'node_output_bag': str(bag_path), 'node_log': str(node.log_path), 'node_exit_status': node_status,
        'node_command': ' '.join(node_command(exe, options.params_file, options.overrides, info.msgtype,
                                                 options.lockstep)),
        'node_diagnostics': diagnostics,
    }
    return LiveRun(records, summary, backend)


def _restamped(msg, stamp: int):
    time_msg = replace(msg.header.stamp, sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
    return replace(msg, header=replace(msg.header, stamp=time_msg))


def _wait_for_answers(recorder: _PlayerRecorder, count: int, last_sent_ns: int, idle_timeout_s: float) -> None:
    """Lockstep: wait until ``count`` expressions messages arrived (the node finished every frame sent so
    far, however slow this machine is), or none for ``idle_timeout_s`` (a frame that gave no answer)."""
    while recorder.answers < count:
        if time.time_ns() - max(recorder.last_expressions_ns, last_sent_ns) > idle_timeout_s * 1e9:
            return
        time.sleep(0.005)


def _drain(recorder: _PlayerRecorder, sent: list[_Sent], idle_timeout_s: float, typestore) -> None:
    """Wait for the node to finish the last frames: until the last frame's result arrives, or no
    result has arrived for ``idle_timeout_s`` (the node drops frames it could not keep up with)."""
    if not sent:
        return
    last_stamp = sent[-1].stamp
    last_sent = sent[-1].sent_ns
    while True:
        answers = [d for topic, _, d in recorder.snapshot() if topic == EXPRESSIONS]
        if answers and stamp_ns(typestore.deserialize_cdr(answers[-1], OUTPUT_TYPES[EXPRESSIONS])) >= last_stamp:
            return
        idle_since = max(recorder.last_expressions_ns, last_sent)
        if time.time_ns() - idle_since > idle_timeout_s * 1e9:
            return
        time.sleep(0.02)


def _wait_for_diagnostics(recorder: _PlayerRecorder, timeout_s: float) -> None:
    """Wait for one more /diagnostics message, so the recorded node statistics cover every frame."""
    since = time.time_ns()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(topic == DIAGNOSTICS and ns > since for topic, ns, _ in recorder.snapshot()[-20:]):
            return
        time.sleep(0.05)


def _write_output_bag(path: Path, storage: str, typestore, sent: list[_Sent],
                      received: list[tuple[str, int, bytes]]) -> None:
    header_cls = typestore.types['std_msgs/msg/Header']
    time_cls = typestore.types['builtin_interfaces/msg/Time']
    entries = [(s.sent_ns, SENT, typestore.serialize_cdr(
        header_cls(stamp=time_cls(sec=s.stamp // 1_000_000_000, nanosec=s.stamp % 1_000_000_000),
                   frame_id=str(s.index)), OUTPUT_TYPES[SENT])) for s in sent]
    entries += [(ns, topic, data) for topic, ns, data in received]
    entries.sort(key=lambda e: e[0])
    with BagWriter(path, storage, typestore) as writer:
        for topic, msgtype in OUTPUT_TYPES.items():
            writer.add_topic(topic, msgtype)
        for ns, topic, data in entries:
            writer.write_cdr(topic, ns, data)


def evaluate_output_bag(path: Path, sent: list[_Sent]) -> tuple[list[FrameRecord], dict, str]:
    """Frame records from a node-output bag: each sent frame with the node's result for its stamp
    (or NO_OUTPUT), its end-to-end latency and the commands stamped within its frame interval.

    Returns (records, last diagnostics key/values of fer_node, backend name from the diagnostics).
    """
    with BagReader(path) as reader:
        sent_ns = {}
        for m in reader.messages([SENT]):    # std_msgs/Header itself
            sent_ns[m.msg.stamp.sec * 1_000_000_000 + m.msg.stamp.nanosec] = m.log_ns
        results: dict[int, tuple[int, Any]] = {}     # rosbags messages: dataclasses made from the .msg files
        commands: list[Any] = []
        diagnostics: dict[str, str] = {}
        for m in reader.messages([EXPRESSIONS, COMMAND, DIAGNOSTICS]):
            if m.topic == EXPRESSIONS:
                results.setdefault(stamp_ns(m.msg), (m.log_ns, m.msg))
            elif m.topic == COMMAND:
                if sent and m.log_ns >= sent[0].sent_ns:   # earlier ones are start-up ticks (wall clock)
                    commands.append(m.msg)
            else:
                diagnostics = {k: v for k, v in node_status(m.msg).items() if not k.startswith('_')} or diagnostics
    records = []
    for s in sent:
        got = results.get(s.stamp)
        if got is None:
            records.append(FrameRecord(s.index, s.t_s, s.stamp, None, NO_OUTPUT,
                                       'the node published no expressions for this frame'))
            continue
        recv_ns, msg = got
        result = _frame_result(msg)
        records.append(FrameRecord(s.index, s.t_s, s.stamp, result,
                                   timing_ms={'end_to_end': (recv_ns - sent_ns.get(s.stamp, s.sent_ns)) * 1e-6}))
    _attach_commands(records, commands)
    return records, diagnostics, diagnostics.get('backend', '')


def _frame_result(msg) -> FrameResult:
    """FaceExpressionArray (rosbags object) -> FrameResult (raw probabilities are not published:
    the smoothed ones stand in)."""
    faces = []
    for f in msg.faces:
        probs = np.asarray(f.probabilities, dtype=np.float32)
        faces.append(FaceResult(face_id=f.face_id, box=(float(f.roi.x_offset), float(f.roi.y_offset),
                                                        float(f.roi.width), float(f.roi.height)),
                                expression=f.expression, confidence=float(f.confidence), probabilities=probs,
                                raw_probabilities=probs, valence=float(f.valence), arousal=float(f.arousal),
                                detection_score=float(f.detection_score)))
    return FrameResult(stamp=stamp_ns(msg) * 1e-9, labels=tuple(msg.labels), faces=faces)


def _attach_commands(records: list[FrameRecord], commands: list) -> None:
    """Each command goes to the last answered frame stamped at or before it (tick commands between
    frames follow the frame before them; any stamped before the first frame are left out)."""
    answered = [(r.stamp_ns, r.result) for r in records if r.result is not None]
    stamps = [stamp for stamp, _ in answered]
    for c in commands:
        stamp = stamp_ns(c)
        i = bisect.bisect_right(stamps, stamp) - 1
        if i < 0:
            continue
        answered[i][1].commands.append(Command(
            command=c.command, priority=int(c.priority), source_face_id=c.source_face_id, expression=c.expression,
            confidence=float(c.confidence), heartbeat=bool(c.heartbeat), stamp=stamp * 1e-9))


__all__ = ['LiveError', 'LiveOptions', 'LiveRun', 'run_live', 'find_node_executable', 'node_command',
           'evaluate_output_bag']
