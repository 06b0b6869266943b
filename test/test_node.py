"""fer_node as a real process: camera process -> node process -> this process, over real DDS."""
from __future__ import annotations

import signal
import time

import cv2
import numpy as np
import pytest

from ros_harness import frames_handled, image_msg, latest_diag, requires_ros, start_camera, start_node, wait_settled

pytestmark = [pytest.mark.ros, requires_ros]


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _run_stream(tmp_path, collector, node_params=None, camera_params=None, frames=12, until=None, faces=1):
    """A 30 Hz camera process streams until the node has published ``frames`` expression arrays, one of
    them with ``faces`` faces (and ``until()`` holds, if given) however fast this machine processes them,
    then stops; returns once the node has finished every frame. (The background scan finds a newcomer
    however many frames pass meanwhile: on a loaded machine that can be more than ``frames``.)"""
    node = start_node(tmp_path, node_params)
    try:
        compressed = (node_params or {}).get('image_transport') == 'compressed'
        collector.wait_node_ready(node, '/image/compressed' if compressed else '/image')
        camera = start_camera(tmp_path, {'rate_hz': 30.0, 'duration_s': 0.0, 'frame_id': 'cam_test',
                                         **(camera_params or {})})
        try:
            def done():
                exprs = collector.snapshot()[0]
                return (len(exprs) >= frames and any(len(m.faces) >= faces for _, m in exprs)
                        and (until is None or until()))
            collector.wait_for(done, 120, node, f'{frames} expression arrays, one with {faces} face(s)')
        finally:
            assert camera.stop() == 0, camera.output()
        wait_settled(collector, node, after=len(collector.snapshot()[2]))
        return node, camera.output()
    except BaseException:
        node.stop()
        raise


def test_expressions_for_every_processed_frame_with_input_header(tmp_path, collector):
    start = time.time()
    # stream until a command decision too (commands need confirmation over stamped time, not frames)
    node, camera_log = _run_stream(tmp_path, collector,
                                   until=lambda: any(not m.heartbeat for _, m in collector.snapshot()[1]))
    try:
        exprs, commands, _ = collector.snapshot()
        diag = latest_diag(collector)
        processed = int(diag['frames_processed'])
        assert processed >= 10, diag
        assert len(exprs) == processed, f'{len(exprs)} expression arrays for {processed} processed frames'
        stamps = [_stamp(m) for _, m in exprs]
        assert all(m.header.frame_id == 'cam_test' for _, m in exprs)
        assert stamps == sorted(stamps) and start - 1 < stamps[0] and stamps[-1] < time.time()
        # the still face keeps one id once confirmed
        ids = {f.face_id for _, m in exprs for f in m.faces}
        assert len(ids) == 1, ids
        faces = [f for _, m in exprs for f in m.faces]
        # the face is found by the background scan (however many frames pass meanwhile on a busy machine),
        # then published on every frame
        first = next(i for i, (_, m) in enumerate(exprs) if m.faces)
        assert all(len(m.faces) == 1 for _, m in exprs[first:]), [len(m.faces) for _, m in exprs]
        face = faces[-1]
        labels = list(exprs[-1][1].labels)
        assert len(face.probabilities) == len(labels) == 7
        assert abs(sum(face.probabilities) - 1) < 1e-3
        assert face.expression == labels[int(np.argmax(face.probabilities))]
        assert face.roi.width > 50 and face.roi.height > 50
        assert -1 <= face.valence <= 1 and -1 <= face.arousal <= 1
        # commands follow the mapping of the packaged commands.yaml
        from fer_ros.hri.command_config import load_command_config
        config = load_command_config(None)
        changes = [m for _, m in commands if not m.heartbeat]
        assert changes, 'no command published'
        for msg in changes:
            if msg.command != 'HOLD' and msg.expression:
                assert msg.command == config.command_for(msg.expression), msg
                assert msg.source_face_id in ids
        assert int(diag['frames_received']) == processed + int(diag['frames_dropped']) + \
            sum(int(diag.get(k, '0')) for k in ('decode_errors', 'pipeline_errors', 'out_of_order', 'future_stamp',
                                                'clock_jump', 'bad_stamp'))
    finally:
        assert node.stop() == 0


@pytest.mark.parametrize('node_reliability,camera_reliability', [
    ('best_effort', 'reliable'), ('reliable', 'reliable')])
def test_reliable_cameras_640x480(tmp_path, collector, node_reliability, camera_reliability):
    node, _ = _run_stream(tmp_path, collector, {'reliability': node_reliability},
                          {'reliability': camera_reliability}, frames=10)
    try:
        exprs, _, _ = collector.snapshot()
        assert len(exprs) >= 10
        assert any(m.faces for _, m in exprs)
    finally:
        node.stop()


def test_compressed_transport(tmp_path, collector):
    node, _ = _run_stream(tmp_path, collector, {'image_transport': 'compressed'},
                          {'transport': 'compressed'}, frames=10)
    try:
        exprs, _, _ = collector.snapshot()
        assert len(exprs) >= 10 and any(m.faces for _, m in exprs)
    finally:
        node.stop()


def test_five_faces_get_distinct_stable_ids(tmp_path, collector):
    node, _ = _run_stream(tmp_path, collector, camera_params={'num_faces': 5}, frames=10, faces=5)
    try:
        exprs, _, _ = collector.snapshot()
        last = exprs[-1][1]
        assert len(last.faces) == 5
        assert len({f.face_id for f in last.faces}) == 5
        ids = {f.face_id for _, m in exprs for f in m.faces}
        assert len(ids) == 5, f'ids changed on still faces: {sorted(ids)}'
    finally:
        node.stop()


FAST_DIAGNOSTICS = {'diagnostics_period_s': 0.1}   # lets a test see each frame's outcome quickly


def _publish_one_at_a_time(collector, node, pub, msgs, warm_up) -> dict:
    """Publish ``msgs`` so that the latest-frame slot drops none: each one only after the node's
    diagnostics show every earlier frame received and finished (a condition, not a sleep, so a slow or
    loaded machine only takes longer). First ``warm_up(k)`` frames (frame_id 'warm_up', stamped before
    ``msgs``) are sent until one is processed: a message sent right after matching can be lost while the
    node's side of discovery completes. Returns the settled diagnostics values."""
    for k in range(30):
        pub.publish(warm_up(k))
        try:
            collector.wait_for(lambda: int(latest_diag(collector).get('frames_processed', '0')) > 0, 2.0, node,
                               'a warm-up frame')
            break
        except (TimeoutError, pytest.fail.Exception):
            continue
    base = int(wait_settled(collector, node)['frames_received'])
    for count, msg in enumerate(msgs, 1):
        pub.publish(msg)

        def finished(count=count):
            values = latest_diag(collector)
            return bool(values) and int(values['frames_received']) == base + count == frames_handled(values)
        collector.wait_for(finished, 30, node, f'the node to finish frame {count} of {len(msgs)}')
    return wait_settled(collector, node)


def test_bad_raw_frames_are_reported_and_skipped(tmp_path, collector):
    from sensor_msgs.msg import Image
    node = start_node(tmp_path, FAST_DIAGNOSTICS)
    try:
        collector.wait_node_ready(node)
        pub = collector.publisher(Image, 'image', reliable=True)
        collector.wait_for(lambda: pub.get_subscription_count() > 0, 10, node, 'node to match the test publisher')
        t0 = time.time()
        good = image_msg(t0, 'bad_test')
        unknown = image_msg(t0 + 0.1, 'bad_test')
        unknown.encoding = 'bayer_weird16'
        short = image_msg(t0 + 0.2, 'bad_test')
        short.data = bytes(short.data)[: short.step * 10]
        empty = Image(header=image_msg(t0 + 0.3, 'bad_test').header, height=0, width=0, encoding='bgr8', step=0)
        huge = Image(header=image_msg(t0 + 0.4, 'bad_test').header, height=8000, width=8000, encoding='mono8',
                     step=8000, data=b'\x00' * 16)   # header claims 8000x8000; rejected before any copy
        older = image_msg(t0 - 0.5, 'bad_test')        # out of order in time
        after = image_msg(t0 + 1.0, 'bad_test')
        diag = _publish_one_at_a_time(collector, node, pub, (good, unknown, short, empty, huge, older, after),
                                      lambda k: image_msg(t0 - 2.0 + k * 1e-3, 'warm_up'))
        assert node.popen.poll() is None, 'node died'
        assert int(diag['frames_dropped']) == 0, diag
        assert int(diag['decode_errors']) == 4, diag
        assert int(diag['out_of_order']) == 1, diag
        from diagnostic_msgs.msg import DiagnosticStatus
        assert diag['_level'] == DiagnosticStatus.WARN
        published = sorted(round(_stamp(m) - t0, 3) for _, m in collector.snapshot()[0]
                           if m.header.frame_id == 'bad_test')
        assert published == [0.0, 1.0]
        log = node.output()
        assert 'unsupported encoding' in log and 'bayer_weird16' in log
    finally:
        assert node.stop() == 0


def test_bad_compressed_frames_are_reported_and_skipped(tmp_path, collector):
    from sensor_msgs.msg import CompressedImage

    from fer_ros.hri.stamps import to_stamp
    from fer_ros.sample_frames import sample_frame
    node = start_node(tmp_path, {'image_transport': 'compressed', **FAST_DIAGNOSTICS})
    try:
        collector.wait_node_ready(node, '/image/compressed')
        pub = collector.publisher(CompressedImage, 'image/compressed')
        collector.wait_for(lambda: pub.get_subscription_count() > 0, 10, node, 'node to match the test publisher')
        jpeg = cv2.imencode('.jpg', sample_frame(1, size=(640, 480), seed=0)[0])[1].tobytes()
        big = cv2.imencode('.jpg', np.full((8000, 8000, 3), 127, np.uint8))[1].tobytes()
        t0 = time.time()
        frames = [(b'', 'jpeg'), (jpeg[: len(jpeg) // 3] + b'garbage' * 10, 'jpeg'), (b'\x00' * 500, 'png'),
                  (big, 'jpeg'), (jpeg, 'jpeg')]
        msgs = []
        for i, (data, fmt) in enumerate(frames):   # 10 Hz stamps: never ahead of the camera's clock (future_stamp)
            msgs.append(CompressedImage(format=fmt, data=data))
            msgs[-1].header.stamp.sec, msgs[-1].header.stamp.nanosec = to_stamp(t0 + 0.1 * i)
        def warm_up(k):
            msg = CompressedImage(format='jpeg', data=jpeg)
            msg.header.frame_id = 'warm_up'
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(t0) - 2, k * 1000
            return msg
        diag = _publish_one_at_a_time(collector, node, pub, msgs, warm_up)
        assert node.popen.poll() is None
        assert int(diag['frames_dropped']) == 0, diag
        # the truncated JPEG may decode partially (libjpeg pads it); every other bad one must be rejected
        assert int(diag['decode_errors']) >= 3, diag
        assert 'empty CompressedImage' in node.output()
        assert _stamp(collector.snapshot()[0][-1][1]) == pytest.approx(t0 + 0.4, abs=1e-6)
    finally:
        node.stop()


def test_camera_disappears_and_comes_back(tmp_path, collector):
    node = start_node(tmp_path)
    try:
        collector.wait_node_ready(node)
        before = 0
        for run in range(2):
            cam = start_camera(tmp_path, {'rate_hz': 20.0, 'duration_s': 0.0}, name=f'camera{run}')
            try:
                collector.wait_for(lambda: len(collector.snapshot()[0]) >= before + 3, 60, node,
                                   f'expressions from camera run {run}')
            finally:
                assert cam.stop() == 0, cam.output()   # the camera goes away; the node must not mind
            before = len(collector.snapshot()[0])
        assert node.popen.poll() is None
    finally:
        node.stop()


def test_debug_image_published_when_subscribed(tmp_path, collector):
    from sensor_msgs.msg import Image
    got = []
    collector.node.create_subscription(Image, 'debug_image', got.append, 5)
    node, _ = _run_stream(tmp_path, collector, frames=3, until=lambda: bool(got))
    try:
        assert got, 'no debug image'
        assert (got[-1].width, got[-1].height, got[-1].encoding) == (640, 480, 'bgr8')
        assert got[-1].header.frame_id == 'cam_test'
    finally:
        node.stop()


@pytest.mark.parametrize('params,exit_code,needle', [
    ({'model_path': '/nonexistent/model.onnx'}, 1, '/nonexistent/model.onnx'),
    ({'detection_threshold': 1.5}, 2, 'detection_threshold'),
    ({'backend': 'cuda_magic'}, 2, 'backend'),
])
def test_bad_start_parameters_fail_fast(tmp_path, params, exit_code, needle):
    node = start_node(tmp_path, params)
    assert node.popen.wait(30) == exit_code, node.output()
    assert needle in node.output()
    assert 'Traceback' not in node.output()


def test_corrupt_model_fails_at_start(tmp_path):
    bad = tmp_path / 'corrupt.onnx'
    bad.write_bytes(b'this is not an onnx model' * 10)
    node = start_node(tmp_path, {'model_path': str(bad)})
    assert node.popen.wait(30) == 1, node.output()
    assert str(bad) in node.output()


def test_parameters_at_run_time(tmp_path, collector):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    node = start_node(tmp_path)
    try:
        collector.wait_node_ready(node)
        client = collector.node.create_client(SetParameters, '/fer_node/set_parameters')
        assert client.wait_for_service(timeout_sec=10)

        def set_param(name, value):
            if isinstance(value, float):
                pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
            else:
                pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
            future = client.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
            collector.wait_for(future.done, 10, node, f'set {name}')
            return future.result().results[0]

        ok = set_param('detection_threshold', 0.7)
        assert ok.successful, ok.reason
        bad = set_param('detection_threshold', 1.5)
        assert not bad.successful and 'detection_threshold' in bad.reason
        ro = set_param('backend', 'torch')
        assert not ro.successful
        assert node.popen.poll() is None
    finally:
        node.stop()


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_clean_shutdown(tmp_path, collector, sig):
    node = start_node(tmp_path)
    collector.wait_node_ready(node)
    assert node.stop(sig) == 0, node.output()
    assert 'Traceback' not in node.output()
