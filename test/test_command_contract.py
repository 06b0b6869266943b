"""The STOP contract end to end, from other processes (docs/commands.md, "Safety contract"): the installed
fer_node / fer_lifecycle_node, the installed fer_camera streaming the expression fixtures the shipped
classifier reads as scared (assets/README.md), and this process as the controller, over real DDS.

No expression is remapped: STOP comes from a face the real detector and classifier call scared.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ros_harness import (
    PARAMS_FILE,
    REPO,
    Lifecycle,
    Proc,
    lifecycle_executable,
    requires_ros,
    ros_args,
    start_camera,
    start_node,
)

pytestmark = [pytest.mark.ros, requires_ros]
ASSETS = REPO / 'assets'
SCARED, FEAR_SURPRISE, NO_FACE = (str(ASSETS / name) for name in
                                  ('scared_face.jpg', 'fear_surprise_face.jpg', 'no_face.jpg'))
FAST_DIAG = {'diagnostics_period_s': 0.2}
CONTRACT_DEADLINE_S = 2.0          # the deadline a consumer requests: the node's offer (2 heartbeat periods)


def stamp_of(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def changes(collector) -> list:
    return [m for _, m in collector.snapshot()[1] if not m.heartbeat]


def stream(tmp_path, collector, images: list[str], node_params: dict | None = None, node=None):
    """A node (started here unless given) and a 30 Hz camera cycling through ``images``."""
    node = node or start_node(tmp_path, {**FAST_DIAG, **(node_params or {})})
    try:
        collector.wait_node_ready(node)
        camera = start_camera(tmp_path, {'rate_hz': 30.0, 'images': images, 'frame_id': 'cam'})
    except BaseException:
        node.stop()
        raise
    return node, camera


def wait_stop(collector, node, timeout: float = 90.0):
    collector.wait_for(lambda: any(m.command == 'STOP' for m in changes(collector)), timeout, node, 'STOP')
    return next(m for m in changes(collector) if m.command == 'STOP')


class Consumer:
    """A subscription to `command` in this process with the given QoS and the contract's event callbacks."""

    def __init__(self, collector, qos) -> None:
        from fer_ros.msg import HriCommand
        from fer_ros.ros.command_channel import subscription_event_callbacks
        self.messages: list[tuple[float, object]] = []
        self.events: dict[str, float] = {}
        self._lock = threading.Lock()
        self.created = time.time()
        self.sub = collector.node.create_subscription(
            HriCommand, 'command', self._on_message, qos,
            event_callbacks=subscription_event_callbacks(
                deadline=lambda info: self._event('deadline'),
                liveliness=lambda info: info.alive_count == 0 and self._event('liveliness_lost'),
                incompatible_qos=lambda info: self._event('incompatible_qos')))

    def _on_message(self, msg) -> None:
        with self._lock:
            self.messages.append((time.time(), msg))

    def _event(self, kind: str) -> None:
        with self._lock:
            self.events.setdefault(kind, time.time())


def test_stop_with_one_frame_in_three_blanked(tmp_path, collector):
    node, camera = stream(tmp_path, collector, [SCARED, SCARED, NO_FACE])
    try:
        stop = wait_stop(collector, node)
        assert stop.expression == 'scared' and stop.priority == 255
        exprs = collector.snapshot()[0]
        assert stop.source_face_id in {f.face_id for _, m in exprs for f in m.faces}
        # blank frames did reach the node: processed frames without a published face (it coasted)
        assert any(not m.faces for _, m in exprs[2:])
    finally:
        camera.stop()
        assert node.stop() == 0


def test_stop_with_a_scared_surprised_wobble_is_not_released_while_it_goes_on(tmp_path, collector):
    node, camera = stream(tmp_path, collector, [SCARED, FEAR_SURPRISE])
    try:
        stop = wait_stop(collector, node)
        hold_s = 5.0                   # frames stamped this long after STOP must have been processed
        collector.wait_for(lambda: any(stamp_of(m) >= stamp_of(stop) + hold_s for _, m in collector.snapshot()[0]),
                           120, node, f'{hold_s:g} s of wobbling frames after STOP')
        after = [m.command for m in changes(collector) if stamp_of(m) > stamp_of(stop)]
        assert after == [], after      # no release, no other command while fear keeps appearing
    finally:
        camera.stop()
        assert node.stop() == 0


def test_a_late_joiner_knows_the_current_command_at_once(tmp_path, collector):
    from fer_ros.ros.command_channel import command_qos
    node, camera = stream(tmp_path, collector, [SCARED])
    try:
        wait_stop(collector, node)
        camera.stop()                  # STOP stays latched: no frames, the clock repeats it
        before = {stamp_of(m) for _, m in collector.snapshot()[1]}
        contract = Consumer(collector, command_qos(CONTRACT_DEADLINE_S))
        default = Consumer(collector, 10)                           # volatile: history is not for it
        collector.wait_for(lambda: contract.messages and default.messages, 30, node, 'both late joiners served')
        first = contract.messages[0][1]
        # the contract subscriber gets the command in force as published before it subscribed
        assert first.command == 'STOP' and stamp_of(first) in before, (first, sorted(before)[-3:])
        # the default one no history: a repeat when it matched (Jazzy+) or the next heartbeat (Humble)
        assert default.messages[0][1].command == 'STOP' and default.messages[0][1].heartbeat
    finally:
        camera.stop()
        assert node.stop() == 0


def test_a_default_qos_late_joiner_is_told_the_command_when_it_matches(tmp_path, collector):
    """A volatile subscriber gets no history: the channel repeats the command in force (a heartbeat with the
    last stamp) when a subscriber matches, so it does not wait for the next heartbeat, here 30 s away."""
    from fer_ros.ros.command_channel import publisher_matched_callbacks
    if publisher_matched_callbacks(lambda info: None) is None:
        pytest.skip("this rclpy has no publisher matched event (Humble): the next heartbeat tells the subscriber")
    commands = tmp_path / 'commands.yaml'
    text = (REPO / 'config' / 'commands.yaml').read_text()
    assert 'heartbeat_period_s: 1.0\n' in text
    commands.write_text(text.replace('heartbeat_period_s: 1.0\n', 'heartbeat_period_s: 30.0\n'))
    node = start_node(tmp_path, {**FAST_DIAG, 'commands_file': str(commands)})
    try:
        collector.wait_node_ready(node)
        collector.wait_for(lambda: collector.snapshot()[1], 30, node, 'the HOLD of activation')
        hold = collector.snapshot()[1][-1][1]
        default = Consumer(collector, 10)
        collector.wait_for(lambda: default.messages, 15, node, 'the command in force, repeated at the match')
        first = default.messages[0][1]
        assert (first.command, first.heartbeat, stamp_of(first)) == ('HOLD', True, stamp_of(hold))
    finally:
        assert node.stop() == 0


def test_a_consumer_asking_for_a_shorter_deadline_is_told_it_cannot_have_it(tmp_path, collector):
    from fer_ros.ros.command_channel import command_qos
    node = start_node(tmp_path, FAST_DIAG)
    try:
        collector.wait_node_ready(node)
        greedy = Consumer(collector, command_qos(0.5))   # the node offers 2 heartbeat periods (2 s)
        fine = Consumer(collector, command_qos(CONTRACT_DEADLINE_S))
        collector.wait_for(lambda: 'incompatible_qos' in greedy.events and fine.messages, 30, node,
                           'the incompatible-QoS event, and a message for the compatible consumer')
        assert not greedy.messages and 'incompatible_qos' not in fine.events
    finally:
        assert node.stop() == 0


@pytest.mark.parametrize('how', ['killed', 'frozen'])
def test_the_consumer_learns_when_the_node_is_gone(tmp_path, collector, how):
    """kill -9 or SIGSTOP: the middleware's deadline event reaches the consumer, and for a frozen process
    the liveliness event too. (For a killed one Fast DDS removes the writer; in `make bench-stop` no
    liveliness change came within 30 s of a kill -9, so a consumer must not wait for it: the deadline is
    the signal.)"""
    from fer_ros.ros.command_channel import command_qos
    node = start_node(tmp_path, FAST_DIAG)
    try:
        collector.wait_node_ready(node)
        consumer = Consumer(collector, command_qos(CONTRACT_DEADLINE_S))
        collector.wait_for(lambda: consumer.messages, 30, node, 'the first command (HOLD from activation)')
        os.kill(node.popen.pid, signal.SIGKILL if how == 'killed' else signal.SIGSTOP)
        expected = {'deadline'} if how == 'killed' else {'deadline', 'liveliness_lost'}
        collector.wait_for(lambda: expected <= set(consumer.events), 30, what=' and '.join(sorted(expected)))
    finally:
        if how == 'frozen':
            os.kill(node.popen.pid, signal.SIGKILL)
        node.stop()


def _assert_final_hold(collector, node, after: int, exit_code=0):
    """A HOLD (a change, not a heartbeat) after the first ``after`` commands, and a clean exit."""
    collector.wait_for(lambda: any(m.command == 'HOLD' and not m.heartbeat for _, m in collector.snapshot()[1][after:]),
                       30, what='the final HOLD')
    assert node.popen.wait(30) == exit_code, node.output()
    assert 'not acknowledged' not in node.output() and 'Traceback' not in node.output()


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
@pytest.mark.parametrize('lifecycle', [False, True], ids=['fer_node', 'fer_lifecycle_node'])
def test_final_hold_on_a_signal(tmp_path, collector, sig, lifecycle):
    if lifecycle:
        node = Proc([lifecycle_executable()] + ros_args(FAST_DIAG, None, PARAMS_FILE), tmp_path / 'life.log',
                    cwd=tmp_path)
        life = Lifecycle(collector)
        assert life.transition('configure', node) and life.transition('activate', node)
    else:
        node = None
    node, camera = stream(tmp_path, collector, [SCARED], node=node)
    try:
        wait_stop(collector, node)
        camera.stop()
        after = len(collector.snapshot()[1])
        node.popen.send_signal(sig)
        _assert_final_hold(collector, node, after)
    finally:
        camera.stop()
        node.stop()


def test_final_hold_on_deactivate_and_shutdown(tmp_path, collector):
    node = Proc([lifecycle_executable()] + ros_args(FAST_DIAG, None, PARAMS_FILE), tmp_path / 'life.log',
                cwd=tmp_path)
    life = Lifecycle(collector)
    camera = None
    try:
        assert life.transition('configure', node) and life.transition('activate', node)
        node, camera = stream(tmp_path, collector, [SCARED], node=node)
        wait_stop(collector, node)
        after = len(collector.snapshot()[1])
        assert life.transition('deactivate', node)           # returns once HOLD is out and acknowledged
        collector.wait_for(lambda: any(m.command == 'HOLD' and not m.heartbeat
                                       for _, m in collector.snapshot()[1][after:]), 10, node, 'HOLD on deactivate')
        after = len(collector.snapshot()[1])
        assert life.transition('activate', node)
        collector.wait_for(lambda: any(m.command == 'HOLD' for _, m in collector.snapshot()[1][after:]), 10, node,
                           'HOLD on activation (nobody seen yet)')
        after = len(collector.snapshot()[1])
        assert life.transition('shutdown', node)
        _assert_final_hold(collector, node, after)
    finally:
        if camera is not None:
            camera.stop()
        node.stop()


def test_the_reference_consumer_holds_when_the_node_dies(tmp_path, collector):
    """fer_command_consumer (fer_ros/examples) acts on STOP while the node is alive and on HOLD once it is
    killed, told by the middleware or its own deadline check."""
    from ros_harness import _installed
    node, camera = stream(tmp_path, collector, [SCARED])
    consumer = Proc([_installed('fer_command_consumer')], tmp_path / 'consumer.log', cwd=tmp_path)
    try:
        collector.wait_for(lambda: 'ACT STOP may_move=False' in consumer.output(), 90, node,
                           'the consumer acting on STOP')
        seen = len(consumer.output())
        os.kill(node.popen.pid, signal.SIGKILL)
        collector.wait_for(lambda: 'ACT HOLD may_move=False [' in consumer.output()[seen:], 30, consumer,
                           'the consumer falling back to HOLD')
    finally:
        camera.stop()
        node.stop()
        assert consumer.stop() == 0
