"""Inputs and parameters that must not blind fer_node, each reproduced through a real node process
over real DDS (issue 11): rate limits, decompression bombs, params files, stamps, diagnostics."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from ros_harness import NODE_EXE, PARAMS_FILE, Proc, image_msg, latest_diag, requires_ros, start_node, wait_settled

pytestmark = [pytest.mark.ros, requires_ros]
FAST_DIAG = {'diagnostics_period_s': 0.2}
INT32_MAX = 2**31 - 1


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9




def _frame():
    from fer_ros.sample_frames import sample_frame
    return sample_frame(1, size=(640, 480), seed=0)[0]


def _publisher(collector, node, msg_type=None, topic='image'):
    from sensor_msgs.msg import Image
    pub = collector.publisher(msg_type or Image, topic, reliable=True)
    collector.wait_for(lambda: pub.get_subscription_count() > 0, 30, node, 'node to match the test publisher')
    return pub


def _send_and_wait(collector, node, pub, msg, what='the frame'):
    """Publish one frame and wait for its expressions (so the latest-frame slot drops nothing)."""
    stamp = _stamp(msg)
    pub.publish(msg)
    collector.wait_for(lambda: any(abs(_stamp(m) - stamp) < 1e-6 for _, m in collector.snapshot()[0]), 20, node, what)


def _warm_up(collector, node, pub, before_s: float) -> int:
    """Publish frames stamped a second before ``before_s`` until one comes out (the first message after
    matching can be lost while the node's side of discovery completes). Returns frames processed."""
    for k in range(30):
        pub.publish(image_msg(before_s - 1.0 + k * 1e-3, 'warm_up'))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not collector.snapshot()[0]:
            time.sleep(0.05)
        if collector.snapshot()[0]:
            # earlier warm-up frames may still be in the node (a slow first inference): wait until it has
            # finished every frame it received before counting
            return int(wait_settled(collector, node)['frames_processed'])
    pytest.fail(f'no expressions after 30 warm-up frames\n{node.output()[-2000:]}')


def _wait_diag(collector, node, predicate, what, timeout=20):
    collector.wait_for(lambda: bool(latest_diag(collector)) and predicate(latest_diag(collector)), timeout, node, what)
    return latest_diag(collector)


def _set(collector, name, value, node_name='/fer_node'):
    from rcl_interfaces.msg import Parameter
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter as P
    client = collector.node.create_client(SetParameters, f'{node_name}/set_parameters')
    assert client.wait_for_service(timeout_sec=30)
    msg = P(name, value=value).to_parameter_msg()
    future = client.call_async(SetParameters.Request(parameters=[Parameter(name=msg.name, value=msg.value)]))
    collector.wait_for(future.done, 20, what=f'set {name}')
    collector.node.destroy_client(client)
    return future.result().results[0]


# --- 1. the rate parameter ---------------------------------------------------------------------------

def test_rate_parameter_cannot_blind_the_node_and_a_change_applies_at_once(tmp_path, collector):
    node = start_node(tmp_path, FAST_DIAG)
    try:
        collector.wait_node_ready(node)
        pub = _publisher(collector, node)
        _warm_up(collector, node, pub, time.time())
        refused = _set(collector, 'max_rate_hz', 0.01)
        assert not refused.successful and 'max_rate_hz' in refused.reason and '>= 1' in refused.reason
        assert _set(collector, 'max_rate_hz', 1.0).successful
        t = time.time()
        _send_and_wait(collector, node, pub, image_msg(t), 'a frame at 1 Hz')
        assert _set(collector, 'max_rate_hz', 0.0).successful          # wakes the worker's rate wait
        for k in range(1, 6):                                          # back to full rate: each frame gets out
            _send_and_wait(collector, node, pub, image_msg(t + 0.05 * k), f'frame {k} after max_rate_hz := 0')
    finally:
        assert node.stop() == 0


# --- 2. decompression bomb ---------------------------------------------------------------------------

def test_compressed_bomb_is_refused_from_its_header_and_the_next_frame_processed(tmp_path, collector):
    from image_bombs import png_bomb
    from sensor_msgs.msg import CompressedImage
    node = start_node(tmp_path, {'image_transport': 'compressed', **FAST_DIAG})
    try:
        collector.wait_node_ready(node, '/image/compressed')
        pub = _publisher(collector, node, CompressedImage, 'image/compressed')
        t = time.time()
        bomb = CompressedImage(format='png', data=png_bomb(20000, 20000))
        bomb.header.stamp.sec = int(t)
        pub.publish(bomb)
        _wait_diag(collector, node, lambda d: d.get('decode_errors') == '1', 'the bomb to be counted')
        good = CompressedImage(format='jpeg', data=cv2.imencode('.jpg', _frame())[1].tobytes())
        good.header.stamp.sec = int(t) + 1
        _send_and_wait(collector, node, pub, good, 'the good frame after the bomb')
        log = node.output()
        assert '20000x20000' in log and 'not decoded' in log and '/image/compressed' in log
        import psutil
        assert psutil.Process(node.popen.pid).memory_info().rss < 1.0e9     # 1.2 GB if it had been decoded
    finally:
        assert node.stop() == 0


# --- 3. parameters given at start --------------------------------------------------------------------

def _start(tmp_path, extra_args, name='node'):
    return Proc([NODE_EXE, '--ros-args'] + extra_args, tmp_path / f'{name}.log', cwd=tmp_path)


def _yaml(tmp_path, text, name='params.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize('case', ['keyed_by_name_under_namespace', 'misspelt_key', 'missing_file', 'not_yaml',
                                  'unknown_override', 'wrong_type', 'rate_too_low'])
def test_parameters_that_would_not_apply_fail_at_start_naming_them(tmp_path, case):
    args, needles = {
        'keyed_by_name_under_namespace': (
            ['--params-file',
             _yaml(tmp_path, 'fer_node:\n  ros__parameters:\n    detection_threshold: 0.7\n', 'a.yaml'),
             '-r', '__ns:=/head'], ["section 'fer_node' does not apply", '/head/fer_node', '"/**:"']),
        'misspelt_key': (['--params-file',
                          _yaml(tmp_path, '/**:\n  ros__parameters:\n    detection_treshold: 0.7\n', 'b.yaml')],
                         ["unknown parameter 'detection_treshold'", "did you mean 'detection_threshold'"]),
        'missing_file': (['--params-file', str(tmp_path / 'nope.yaml')], ['nope.yaml', 'no such file']),
        'not_yaml': (['--params-file', _yaml(tmp_path, 'fer_node: [unclosed\n  ros__parameters: {\n', 'c.yaml')],
                     ['not valid YAML']),
        'unknown_override': (['-p', 'detection_treshold:=0.7'], ["unknown parameter 'detection_treshold'"]),
        'wrong_type': (['-p', 'detection_threshold:=high'], ["'detection_threshold'", 'expected float']),
        'rate_too_low': (['-p', 'max_rate_hz:=0.01'], ["'max_rate_hz'", '>= 1']),
    }[case]
    node = _start(tmp_path, args)
    assert node.popen.wait(60) == 2, node.output()
    log = node.output()
    assert all(n in log for n in needles), log
    assert 'Traceback' not in log


def test_the_shipped_params_file_applies_under_a_namespace(tmp_path, collector):
    from rcl_interfaces.srv import GetParameters
    tuned = PARAMS_FILE.read_text().replace('detection_threshold: 0.6', 'detection_threshold: 0.7')
    assert tuned.startswith('#') and '\n/**:\n' in tuned and 'detection_threshold: 0.7' in tuned
    node = _start(tmp_path, ['--params-file', _yaml(tmp_path, tuned), '-r', '__ns:=/head'])
    try:
        client = collector.node.create_client(GetParameters, '/head/fer_node/get_parameters')
        assert client.wait_for_service(timeout_sec=60), node.output()
        future = client.call_async(GetParameters.Request(names=['detection_threshold']))
        collector.wait_for(future.done, 20, node, 'get_parameters')
        assert future.result().values[0].double_value == pytest.approx(0.7)
    finally:
        assert node.stop() == 0


def _mismatched_model(path):
    """A valid fer_ros ONNX model whose output has 5 values while its metadata lists 7 labels."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fer_ros.backends.onnxruntime_backend import read_onnx_spec
    from fer_ros.util.paths import default_model_path
    spec = read_onnx_spec(default_model_path())
    w = numpy_helper.from_array(np.zeros((5, spec.channels), np.float32), 'w')
    nodes = [helper.make_node('GlobalAveragePool', ['input'], ['g']), helper.make_node('Flatten', ['g'], ['f']),
             helper.make_node('Gemm', ['f', 'w'], ['logits'], transB=1),
             helper.make_node('Softmax', ['logits'], [spec.output_name])]
    graph = helper.make_graph(nodes, 'mismatch', [helper.make_tensor_value_info(
        spec.input_name, TensorProto.FLOAT, ['N', spec.channels, spec.height, spec.width])],
        [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, ['N', 5])], [w])
    nodes[0].input[0] = spec.input_name
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    helper.set_model_props(model, spec.to_metadata())
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize('case', ['output_size_vs_labels', 'tensorrt_missing'])
def test_models_that_cannot_run_fail_at_start(tmp_path, case):
    from fer_ros.backends import tensorrt_installed
    if case == 'tensorrt_missing' and tensorrt_installed():
        pytest.skip('tensorrt imports here')
    args, needle = {'output_size_vs_labels': (['-p', f'model_path:={_mismatched_model(tmp_path / "m.onnx")}'],
                                              'output shape (1, 5), expected (1, 7)'),
                    'tensorrt_missing': (['-p', 'backend:=tensorrt'], "backend 'tensorrt' cannot run here")}[case]
    node = _start(tmp_path, args)
    assert node.popen.wait(60) == 1, node.output()
    assert needle in node.output() and 'Traceback' not in node.output()
    if case == 'tensorrt_missing':       # one message, naming where TensorRT comes from
        fatal = [line for line in node.output().splitlines() if 'cannot run here' in line]
        assert len(fatal) == 1 and 'JetPack' in fatal[0] and "NVIDIA's pip index" in fatal[0], node.output()


def test_use_sim_time_is_accepted_and_wrong_or_unknown_run_time_values_are_named(tmp_path, collector):
    node = start_node(tmp_path, {'use_sim_time': True, **FAST_DIAG})
    try:
        collector.wait_node_ready(node)
        pub = _publisher(collector, node)
        warm = _warm_up(collector, node, pub, time.time())         # frames processed with sim time, no /clock
        _send_and_wait(collector, node, pub, image_msg(time.time()), 'a frame with use_sim_time (no /clock)')
        _wait_diag(collector, node, lambda d: d.get('frames_processed') == str(warm + 1), 'diagnostics without /clock')
        assert _set(collector, 'use_sim_time', False).successful
        wrong = _set(collector, 'detection_threshold', 'high')
        assert not wrong.successful and 'detection_threshold' in wrong.reason and 'expected float' in wrong.reason
        unknown = _set(collector, 'detection_treshold', 0.5)
        assert not unknown.successful and "'detection_treshold'" in unknown.reason and 'did you mean' in unknown.reason
    finally:
        assert node.stop() == 0


# --- 4. stamps ---------------------------------------------------------------------------------------

def test_one_future_stamp_does_not_starve_the_good_frames(tmp_path, collector):
    node = start_node(tmp_path, FAST_DIAG)
    try:
        collector.wait_node_ready(node)
        pub = _publisher(collector, node)
        t = time.time()
        warm = _warm_up(collector, node, pub, t)
        for k in range(5):
            _send_and_wait(collector, node, pub, image_msg(t + k / 30))
        pub.publish(image_msg(t + 5 / 30 + 0.9))
        _wait_diag(collector, node, lambda d: d.get('future_stamp') == '1', 'the future-stamped frame to be skipped')
        for k in range(6, 51):                                       # 45 good frames: every one processed
            _send_and_wait(collector, node, pub, image_msg(t + k / 30), f'good frame {k}')
        diag = _wait_diag(collector, node, lambda d: d.get('frames_processed') == str(warm + 50), 'the counts')
        assert diag['out_of_order'] == '0' and diag['clock_resets'] == '0'
    finally:
        assert node.stop() == 0


def test_two_cameras_with_skewed_clocks_keep_separate_tracks_and_commands_decide(tmp_path, collector):
    node = start_node(tmp_path, FAST_DIAG)
    try:
        collector.wait_node_ready(node)
        pub = _publisher(collector, node)
        t = time.time()
        warm = _warm_up(collector, node, pub, t - 5.0)
        for k in range(40):                                # ~1.3 s of both cameras; 'right' runs 5 s behind
            _send_and_wait(collector, node, pub, image_msg(t + k / 30, 'left'))
            _send_and_wait(collector, node, pub, image_msg(t + k / 30 - 5.0, 'right'))
        diag = _wait_diag(collector, node, lambda d: d.get('frames_processed') == str(warm + 80),
                          'every frame processed')
        assert diag['clock_resets'] == '0' and diag['clock_jump'] == '0' and diag['out_of_order'] == '0'
        exprs, commands, _ = collector.snapshot()
        ids = {cam: {f.face_id for _, m in exprs if m.header.frame_id == cam for f in m.faces}
               for cam in ('left', 'right')}
        assert len(ids['left']) == 1 and len(ids['right']) == 1 and ids['left'] != ids['right'], ids
        changes = [m.command for _, m in commands if not m.heartbeat]
        assert changes and changes[-1] == 'CONFIRM', changes       # the smiling astronaut, on both cameras
    finally:
        assert node.stop() == 0


def test_timer_driven_command_stamps_saturate_instead_of_overflowing(tmp_path, collector):
    node = start_node(tmp_path, FAST_DIAG)
    try:
        collector.wait_node_ready(node)
        pub = _publisher(collector, node)
        far = INT32_MAX - 0.5                               # the camera clock is about to leave int32
        _warm_up(collector, node, pub, far)
        for k in range(3):
            _send_and_wait(collector, node, pub, image_msg(far + k * 0.1), 'far-future frames')
        # frames stop: HOLD / heartbeats come from the timer, on the camera's clock, past INT32_MAX
        collector.wait_for(lambda: any(m.header.stamp.sec == INT32_MAX and m.header.stamp.nanosec == 999_999_999
                                       for _, m in collector.snapshot()[1]), 20, node, 'a saturated command stamp')
        diag = _wait_diag(collector, node, lambda d: True, 'diagnostics')
        assert diag['pipeline_errors'] == '0' and node.popen.poll() is None
    finally:
        assert node.stop() == 0


# --- 5. diagnostics ------------------------------------------------------------------------------------

def test_diagnostics_return_to_ok_and_opencv_errors_name_the_topic(tmp_path, collector):
    from diagnostic_msgs.msg import DiagnosticStatus
    from sensor_msgs.msg import Image
    node = start_node(tmp_path, FAST_DIAG)
    try:
        collector.wait_node_ready(node)
        pub = _publisher(collector, node)
        _warm_up(collector, node, pub, time.time())
        odd = image_msg(time.time())
        odd = Image(header=odd.header, height=3, width=3, encoding='yuv422', step=6, data=b'\x80' * 18)
        pub.publish(odd)
        _wait_diag(collector, node, lambda d: d['_level'] == DiagnosticStatus.WARN, 'WARN after the bad frame')
        t = time.time()
        k = 0

        def ok_again():
            nonlocal k
            k += 1
            if k % 4 == 0:                                  # good frames keep coming
                pub.publish(image_msg(t + k * 0.05))
            d = latest_diag(collector)
            return d.get('_level') == DiagnosticStatus.OK and int(d.get('frames_processed', '0')) > 0
        collector.wait_for(ok_again, 40, node, 'diagnostics back to OK once the error is old')
        log = node.output()
        assert '/image: bad image: yuv422 image 3x3 cannot be converted' in log and 'Assertion' in log
    finally:
        assert node.stop() == 0


def test_a_camera_whose_frames_never_arrive_is_explained_in_diagnostics(tmp_path, collector):
    """Frames too large for the transport are lost before the node sees them; what the node can see is
    a matched publisher that delivers nothing. (Here the publisher sends nothing at all, the same view.)"""
    from diagnostic_msgs.msg import DiagnosticStatus
    node = start_node(tmp_path, FAST_DIAG)
    try:
        collector.wait_node_ready(node)
        _publisher(collector, node)
        diag = _wait_diag(collector, node, lambda d: 'no frame arrived' in d['_message'], 'the silent-camera hint')
        assert diag['_level'] == DiagnosticStatus.WARN
        assert 'fastdds_large_images.xml' in diag['_message'] and 'reliability' in diag['_message']
    finally:
        assert node.stop() == 0


def test_a_clock_jump_back_never_unlatches_stop(tmp_path, collector):
    """The scared face (assets/scared_face.jpg, which the shipped classifier reads as scared) latches
    STOP; then the camera clock jumps back 100 s and the smiling astronaut (no STOP evidence) is shown.
    STOP must hold for its whole release time on the new timeline before anything follows."""
    from fer_ros.hri.command_config import load_command_config

    from ros_harness import REPO
    release_s = load_command_config(None).commands['STOP'].release_s
    node = start_node(tmp_path, FAST_DIAG)
    try:
        collector.wait_node_ready(node)
        pub = _publisher(collector, node)
        t = time.time()
        _warm_up(collector, node, pub, t)
        scared = cv2.imread(str(REPO / 'assets' / 'scared_face.jpg'), cv2.IMREAD_COLOR)
        k = 0
        while not any(m.command == 'STOP' for _, m in collector.snapshot()[1]):
            _send_and_wait(collector, node, pub, image_msg(t + k / 30, bgr=scared), 'scared frames until STOP')
            k += 1
            assert k < 300, 'no STOP from the scared face'
        jump = t + k / 30 - 100.0
        for j in range(2):                                  # held back until 3 frames agree on the new clock
            pub.publish(image_msg(jump + j / 30))
            _wait_diag(collector, node, lambda d: d.get('clock_jump') == str(j + 1), f'jump frame {j} skipped')
        for j in range(2, 150):                             # 5 s of camera clock after the jump
            _send_and_wait(collector, node, pub, image_msg(jump + j / 30), f'astronaut frame {j}')
        _wait_diag(collector, node, lambda d: d.get('clock_resets') == '1', 'the clock jump adopted')
        changes = [m for _, m in collector.snapshot()[1] if not m.heartbeat]
        last_stop = max(i for i, m in enumerate(changes) if m.command == 'STOP')
        following = changes[last_stop + 1:]
        assert following, [m.command for m in changes]             # calm frames do release it, eventually
        adopted = jump + 2 / 30                                     # the 3rd frame on the new clock
        assert following[0].command != 'STOP' and _stamp(following[0]) - adopted >= release_s - 1e-3, \
            (following[0].command, _stamp(following[0]) - adopted)
    finally:
        assert node.stop() == 0
