"""fer_lifecycle_node as a real process, driven from this process through the standard lifecycle
services (/fer_node/change_state and /fer_node/get_state, transitions by label)."""
from __future__ import annotations

import time

import pytest

from ros_harness import (
    PARAMS_FILE,
    Lifecycle,
    Proc,
    image_msg,
    latest_diag,
    lifecycle_executable,
    requires_ros,
    ros_args,
)

pytestmark = [pytest.mark.ros, requires_ros]
LIFECYCLE_EXE = lifecycle_executable()


def _start(tmp_path, params=None):
    return Proc([LIFECYCLE_EXE] + ros_args({'diagnostics_period_s': 0.2, **(params or {})}, None, PARAMS_FILE),
                tmp_path / 'lifecycle.log', cwd=tmp_path)


def test_every_transition_from_another_process(tmp_path, collector):
    from sensor_msgs.msg import Image
    node = _start(tmp_path, {'model_path': str(tmp_path / 'missing.onnx')})
    life = Lifecycle(collector)
    try:
        assert life.state(node) == 'unconfigured'
        assert collector.node.count_subscribers('/image') == 0          # nothing before configure+activate

        # configure with a bad model: stays unconfigured, with the reason in the log and diagnostics
        assert not life.transition('configure', node)
        assert life.state(node) == 'unconfigured'
        collector.wait_for(lambda: 'missing.onnx' in latest_diag(collector).get('_message', ''), 20, node,
                           'the configure failure in diagnostics')
        assert 'configure failed' in node.output() and 'missing.onnx' in node.output()

        # parameters may be fixed while unconfigured (model_path is read-only once configured)
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters
        client = collector.node.create_client(SetParameters, '/fer_node/set_parameters')
        assert client.wait_for_service(timeout_sec=30)
        future = client.call_async(SetParameters.Request(parameters=[Parameter(
            name='model_path', value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=''))]))
        collector.wait_for(future.done, 20, node, 'set model_path')
        assert future.result().results[0].successful, future.result().results[0].reason

        assert life.transition('configure', node)
        assert life.state(node) == 'inactive'
        assert collector.node.count_subscribers('/image') == 0          # inactive: not subscribed yet

        assert life.transition('activate', node)
        assert life.state(node) == 'active'
        pub = collector.publisher(Image, 'image')
        collector.wait_for(lambda: pub.get_subscription_count() > 0, 30, node, 'the active node to subscribe')
        t = time.time()
        pub.publish(image_msg(t))
        collector.wait_for(lambda: len(collector.snapshot()[0]) >= 1, 30, node, 'expressions while active')

        commands_before = len(collector.snapshot()[1])
        assert life.transition('deactivate', node)
        assert life.state(node) == 'inactive'
        collector.wait_for(lambda: any(m.command == 'HOLD' and not m.heartbeat
                                       for _, m in collector.snapshot()[1][commands_before:]),
                           20, node, 'HOLD on deactivate')
        assert collector.node.count_subscribers('/image') == 0          # no longer processing
        processed = len(collector.snapshot()[0])

        assert life.transition('cleanup', node)
        assert life.state(node) == 'unconfigured'
        # and back: configure + activate again, frames are processed again
        assert life.transition('configure', node) and life.transition('activate', node)
        collector.wait_for(lambda: pub.get_subscription_count() > 0, 30, node, 'subscribed again')
        pub.publish(image_msg(t + 1.0))
        collector.wait_for(lambda: len(collector.snapshot()[0]) > processed, 30, node, 'expressions after reactivation')
        collector.wait_for(lambda: latest_diag(collector).get('state') == 'active', 20, node, 'diagnostics: active')

        assert life.transition('shutdown', node)                         # from active: ends the process
        assert node.popen.wait(30) == 0, node.output()
        assert 'Traceback' not in node.output()
    finally:
        node.stop()


def test_invalid_transition_is_refused_and_the_node_lives_on(tmp_path, collector):
    node = _start(tmp_path)
    life = Lifecycle(collector)
    try:
        assert life.state(node) == 'unconfigured'
        assert not life.transition('activate', node)                     # not from unconfigured
        assert not life.transition('no_such_transition', node)
        assert life.state(node) == 'unconfigured' and node.popen.poll() is None
    finally:
        assert node.stop() == 0


def test_deactivate_forgets_the_scene_and_cancels_a_calibration(tmp_path, collector):
    """A calibration running at deactivate does not finish later on frames from before it, and the next
    activation starts from nothing: no track, no evidence, HOLD until a face is seen again."""
    from fer_ros.srv import CalibrateNeutral

    from ros_harness import start_camera
    node = _start(tmp_path)
    life = Lifecycle(collector)
    camera = None
    try:
        assert life.transition('configure', node) and life.transition('activate', node)
        collector.wait_node_ready(node)
        camera = start_camera(tmp_path, {'rate_hz': 15.0})
        collector.wait_for(lambda: any(m.faces for _, m in collector.snapshot()[0]), 60, node, 'a tracked face')
        calibrate = collector.node.create_client(CalibrateNeutral, '/fer_node/calibrate_neutral')
        assert calibrate.wait_for_service(timeout_sec=30.0)
        future = calibrate.call_async(CalibrateNeutral.Request(face_id='', duration_s=60.0))
        collector.wait_for(future.done, 30, node, 'the calibration request')
        assert future.result().accepted
        collector.wait_for(lambda: latest_diag(collector).get('neutral_calibration', '').startswith('collecting'),
                           30, node, 'the calibration running')
        assert life.transition('deactivate', node)
        collector.wait_for(lambda: latest_diag(collector).get('neutral_calibration') == 'idle', 30, node,
                           'the calibration cancelled')
        camera.stop()
        after = len(collector.snapshot()[1])
        assert life.transition('activate', node)
        collector.wait_for(lambda: any(m.command == 'HOLD' and not m.heartbeat
                                       for _, m in collector.snapshot()[1][after:]),
                           30, node, 'HOLD at activation: nothing is known any more')
        assert latest_diag(collector).get('neutral_baselines') == 'none'
    finally:
        if camera is not None:
            camera.stop()
        assert node.stop() == 0
