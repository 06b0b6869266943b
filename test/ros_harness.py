"""Helpers for tests that run the real node and camera as separate processes over real DDS.

The pytest process is the third process: an rclpy node (Collector) that subscribes to the node's
outputs. Discovery is waited for through the ROS graph (matched endpoints), never by sleeping.
Requires the colcon install tree (run tests through `make test` / scripts/with_ros.sh).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fer_ros.util import processes
from fer_ros.util.paths import find_executable
from fer_ros.util.processes import LoggedProcess, ros_args  # noqa: F401  (ros_args: for tests)

REPO = Path(__file__).resolve().parents[1]


def _installed(name: str) -> Path:
    """lib/fer_ros/NAME of the active distro's install tree (found through AMENT_PREFIX_PATH, which
    scripts/with_ros.sh sets for DISTRO), or a path that does not exist when it is not installed."""
    try:
        return Path(find_executable(name))
    except FileNotFoundError:
        return Path('lib') / 'fer_ros' / name


NODE_EXE = _installed('fer_node')
CAMERA_EXE = _installed('fer_camera')
LISTENER_EXE = _installed('fer_listener')
PARAMS_FILE = NODE_EXE.parents[2] / 'share' / 'fer_ros' / 'config' / 'fer.yaml'   # <prefix>/share/...


def lifecycle_executable() -> Path:
    """The installed fer_lifecycle_node (beside fer_node)."""
    return NODE_EXE.parent / 'fer_lifecycle_node'


class Lifecycle:
    """Drives a managed node from a Collector's rclpy node through the standard lifecycle services."""

    def __init__(self, collector, node_name='/fer_node'):
        from lifecycle_msgs.srv import ChangeState, GetState
        self.collector = collector
        self.change = collector.node.create_client(ChangeState, f'{node_name}/change_state')
        self.get = collector.node.create_client(GetState, f'{node_name}/get_state')

    def _call(self, client, request, proc):
        self.collector.wait_for(lambda: client.service_is_ready(), 60, proc, f'{client.srv_name} offered')
        future = client.call_async(request)
        self.collector.wait_for(future.done, 60, proc, f'a reply from {client.srv_name}')
        return future.result()

    def state(self, proc) -> str:
        from lifecycle_msgs.srv import GetState
        return self._call(self.get, GetState.Request(), proc).current_state.label

    def transition(self, label: str, proc) -> bool:
        """By label: rclpy 7 (Jazzy) crashes on a request with an invalid transition id (ros2/rclpy#1209)."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        return self._call(self.change, ChangeState.Request(transition=Transition(label=label)), proc).success


def ros_available() -> str:
    """'' when the ROS tests can run here, else the reason they cannot (naming `make setup` when it
    is something make setup builds: under CI that skip fails, see conftest.py)."""
    if not NODE_EXE.is_file():
        return ('fer_node is not installed in any AMENT_PREFIX_PATH entry: build with `make setup` (colcon) '
                'and run through `make test` / scripts/with_ros.sh')
    try:
        import rclpy  # noqa: F401

        from fer_ros.msg import FaceExpressionArray  # noqa: F401
    except ImportError as exc:
        return f'rclpy or the generated fer_ros.msg not importable ({exc}): run via `make test` after `make setup`'
    return ''


requires_ros = pytest.mark.skipif(bool(ros_available()), reason=ros_available() or 'ok')


Proc = LoggedProcess


def start_node(tmp_path: Path, params: dict | None = None, remaps: dict | None = None, name: str = 'node') -> Proc:
    return processes.start_node(params, remaps, PARAMS_FILE, tmp_path / f'{name}.log', NODE_EXE, cwd=tmp_path)


def start_camera(tmp_path: Path, params: dict | None = None, remaps: dict | None = None,
                 name: str = 'camera') -> Proc:
    return processes.start_camera(params, remaps, tmp_path / f'{name}.log', CAMERA_EXE, cwd=tmp_path)


class Collector:
    """In-process rclpy node recording expressions, commands and diagnostics with receive times."""

    def __init__(self, namespace: str = '/') -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        from fer_ros.msg import FaceExpressionArray, HriCommand

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node('test_collector', namespace=namespace, context=self.context)
        self.expressions: list[tuple[float, object]] = []   # (time.time() at receipt, msg)
        self.commands: list[tuple[float, object]] = []
        self.diagnostics: list[tuple[float, object]] = []
        self._lock = threading.Lock()
        self.node.create_subscription(FaceExpressionArray, 'expressions', self._rec(self.expressions), 100)
        self.node.create_subscription(HriCommand, 'command', self._rec(self.commands), 100)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._rec(self.diagnostics), 100)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def publisher(self, msg_type, topic: str, reliable: bool = True):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=10, reliability=reliability)
        return self.node.create_publisher(msg_type, topic, qos)

    def _rec(self, store):
        def callback(msg):
            with self._lock:
                store.append((time.time(), msg))
        return callback

    def _spin(self):
        while self._running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for(self, predicate, timeout: float, proc: Proc | None = None, what: str = 'condition') -> None:
        """Wait until predicate() is true; fail with the node's log if it is not or the node died."""
        try:
            processes.wait_until(predicate, timeout, proc, what)
        except (processes.ChildExited, TimeoutError) as exc:
            pytest.fail(str(exc))

    def wait_node_ready(self, proc: Proc, image_topic: str = '/image', timeout: float = 30.0) -> None:
        """The node is up when it subscribes to the image topic, publishes expressions, and one of its
        /diagnostics messages has reached this process. Seeing the node's publishers in the graph does
        not mean the node's writers have matched our readers yet (on a loaded machine the first
        expression arrays could be lost); a received diagnostics message proves they have, since the
        node creates all its publishers together and we subscribed to all topics before it started."""
        self.wait_for(lambda: processes.node_is_ready(self.node, image_topic), timeout, proc,
                      f'fer_node to subscribe to {image_topic}')
        self.wait_for(lambda: bool(latest_diag(self)), timeout, proc, 'a /diagnostics message from fer_node')

    def snapshot(self):
        with self._lock:
            return list(self.expressions), list(self.commands), list(self.diagnostics)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2)
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def diag_values(diag_msg) -> dict[str, str]:
    """The fer_node status's key/values of a DiagnosticArray (fer_ros.util.processes.node_status)."""
    return processes.node_status(diag_msg)


# Counters of frames the node received and did not process (a frame ends in exactly one of these,
# in frames_processed or in frames_dropped); absent keys count 0.
FRAME_ERROR_COUNTERS = ('decode_errors', 'pipeline_errors', 'out_of_order', 'future_stamp', 'clock_jump', 'bad_stamp')


def frames_handled(values: dict[str, str]) -> int:
    """Frames the node has finished with according to one diagnostics message's values."""
    return (int(values.get('frames_processed', '0')) + int(values.get('frames_dropped', '0'))
            + sum(int(values.get(k, '0')) for k in FRAME_ERROR_COUNTERS))


def wait_settled(collector: Collector, proc: Proc, after: int = 0, timeout: float = 60.0) -> dict[str, str]:
    """Wait (on conditions, not a fixed sleep) until the node has finished every frame it received and
    this process has every expression array it published: two diagnostics messages in a row, both newer
    than the first ``after`` ones, report the same counts, every received frame is handled, and as many
    expression arrays arrived as frames were processed. Returns the last diagnostics values."""
    state: dict[str, str] = {}

    def settled() -> bool:
        exprs, _, diags = collector.snapshot()
        values = [v for v in (diag_values(m) for _, m in diags[after:]) if v]
        if len(values) < 2:
            return False
        previous, last = ({k: v for k, v in d.items() if k.startswith('frames_') or k in FRAME_ERROR_COUNTERS}
                          for d in values[-2:])
        state.clear()
        state.update(values[-1])
        return (previous == last and frames_handled(values[-1]) == int(values[-1]['frames_received'])
                and len(exprs) == int(values[-1]['frames_processed']))

    collector.wait_for(settled, timeout, proc, 'the node to finish every received frame')
    return dict(state)


def latest_diag(collector: Collector) -> dict[str, str]:
    """The newest fer_node status received (diag_values), or {}."""
    for _, msg in reversed(collector.snapshot()[2]):
        values = diag_values(msg)
        if values:
            return values
    return {}


def image_msg(stamp_s: float, frame_id: str = 'cam', bgr=None):
    """A bgr8 sensor_msgs/Image stamped ``stamp_s`` (saturated to a ROS Time): ``bgr``, or a 640x480
    frame with one face."""
    from std_msgs.msg import Header

    from fer_ros.hri.stamps import to_stamp
    from fer_ros.ros.convert import bgr_to_image
    from fer_ros.sample_frames import sample_frame
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = to_stamp(stamp_s)
    return bgr_to_image(sample_frame(1, size=(640, 480), seed=0)[0] if bgr is None else bgr, header)
