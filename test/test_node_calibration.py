"""~/calibrate_neutral and ~/clear_neutral on a real fer_node process, over real DDS.

The camera process streams assets/camera.jpg (the cameraman, whom the FER2013 model calls sad at rest);
this process calls the services and reads /expressions and /diagnostics.
"""
from __future__ import annotations

import pytest

from ros_harness import NODE_EXE, PARAMS_FILE, REPO, Proc, latest_diag, requires_ros, ros_args, start_camera, start_node

pytestmark = [pytest.mark.ros, requires_ros]
CAMERAMAN = str(REPO / 'assets' / 'camera.jpg')


def _call(collector, client, request, timeout=10.0):
    assert client.wait_for_service(timeout_sec=30.0), f'{client.srv_name} not offered'
    future = client.call_async(request)
    collector.wait_for(future.done, timeout, what=f'a reply from {client.srv_name}')
    return future.result()


def _latest_faces(collector):
    exprs = collector.snapshot()[0]
    return exprs[-1][1].faces if exprs else []


def test_calibrating_the_cameraman_makes_his_resting_face_neutral_and_clearing_undoes_it(tmp_path, collector):
    from fer_ros.srv import CalibrateNeutral, ClearNeutral

    node = start_node(tmp_path, {'diagnostics_period_s': 0.2})
    camera = None
    try:
        collector.wait_node_ready(node)
        camera = start_camera(tmp_path, {'rate_hz': 15.0, 'images': [CAMERAMAN]})
        collector.wait_for(lambda: bool(_latest_faces(collector)), 30, node, 'the cameraman to be tracked')
        face_id = _latest_faces(collector)[0].face_id
        assert _latest_faces(collector)[0].expression != 'neutral'        # what the issue is about
        calibrate = collector.node.create_client(CalibrateNeutral, '/fer_node/calibrate_neutral')
        clear = collector.node.create_client(ClearNeutral, '/fer_node/clear_neutral')

        unknown = _call(collector, calibrate, CalibrateNeutral.Request(face_id='f999', duration_s=1.0))
        assert not unknown.accepted and 'not in view' in unknown.message and face_id in unknown.faces_in_view
        bad = _call(collector, calibrate, CalibrateNeutral.Request(face_id=face_id, duration_s=100.0))
        assert not bad.accepted and 'duration_s' in bad.message

        # A baseline needs min_samples (5) classified frames within the window: 3 s of a 15 Hz camera
        # leaves room for a slow or loaded machine (5 of 45 frames).
        reply = _call(collector, calibrate, CalibrateNeutral.Request(face_id=face_id, duration_s=3.0))
        assert reply.accepted, reply.message
        key = f'neutral_baseline_{face_id}'
        collector.wait_for(lambda: key in latest_diag(collector), 60, node, 'the baseline in /diagnostics')
        assert 'resting' in latest_diag(collector)[key]
        assert latest_diag(collector)['neutral_calibration_last'] == f'calibrated {face_id}'
        collector.wait_for(lambda: [f.expression for f in _latest_faces(collector)] == ['neutral'], 30, node,
                           'the calibrated resting face to read neutral')
        assert _latest_faces(collector)[0].face_id == face_id

        cleared = _call(collector, clear, ClearNeutral.Request(face_id=''))
        assert list(cleared.cleared) == [face_id]
        collector.wait_for(lambda: latest_diag(collector).get('neutral_baselines') == 'none', 30, node,
                           'diagnostics to show no baseline')
        collector.wait_for(lambda: [f.expression for f in _latest_faces(collector)] not in ([], ['neutral']), 30,
                           node, 'the uncorrected expression to return')
        assert node.popen.poll() is None
    finally:
        if camera is not None:
            camera.stop()
        node.stop()


def test_the_lifecycle_node_offers_the_services_and_refuses_before_configure(tmp_path, collector):
    """Both executables share the services (fer_ros/ros/calibration.py through the node runtime); an
    unconfigured lifecycle node has no pipeline and says so."""
    from fer_ros.srv import CalibrateNeutral, ClearNeutral

    node = Proc([NODE_EXE.parent / 'fer_lifecycle_node'] + ros_args({}, None, PARAMS_FILE),
                tmp_path / 'lifecycle.log', cwd=tmp_path)
    try:
        calibrate = collector.node.create_client(CalibrateNeutral, '/fer_node/calibrate_neutral')
        clear = collector.node.create_client(ClearNeutral, '/fer_node/clear_neutral')
        reply = _call(collector, calibrate, CalibrateNeutral.Request(face_id='', duration_s=0.0))
        assert not reply.accepted and 'not configured' in reply.message
        assert 'not configured' in _call(collector, clear, ClearNeutral.Request(face_id='')).message
        assert node.popen.poll() is None
    finally:
        node.stop()
