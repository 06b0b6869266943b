"""What the node does when something is wrong, seen from other processes: a model or commands file that
could not STOP is refused at start; an inference that never returns gives HOLD and diagnostics ERROR and
fails a deactivation instead of freeing the model under it; a flood of malformed frames with
diagnostics at their highest rate does not end the node (docs/commands.md, "Safety contract")."""
from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from ros_harness import (
    PARAMS_FILE,
    REPO,
    Lifecycle,
    Proc,
    latest_diag,
    lifecycle_executable,
    requires_ros,
    ros_args,
    start_camera,
    start_node,
)

pytestmark = [pytest.mark.ros, requires_ros]
DEFAULT_ONNX = REPO / 'models' / 'mini_xception_fer2013.onnx'
FAST_DIAG = {'diagnostics_period_s': 0.1}


def relabelled_model(tmp_path, labels) -> str:
    """The default model with other class names in its metadata."""
    import onnx

    from fer_ros.core.spec import METADATA_KEY, ModelSpec
    proto = onnx.load(str(DEFAULT_ONNX))
    entry = next(p for p in proto.metadata_props if p.key == METADATA_KEY)
    entry.value = ModelSpec(**{**ModelSpec.from_json(entry.value).__dict__, 'labels': tuple(labels)}).to_json()
    path = tmp_path / 'relabelled.onnx'
    onnx.save(proto, str(path))
    return str(path)


def hanging_model(tmp_path) -> str:
    """A real ONNX classifier whose inference does not return on a real face: a Loop whose trip count is
    the crop's total |intensity| x 1e5 (hundreds of millions of iterations: minutes in ONNX Runtime,
    which holds no Python lock meanwhile), and zero on a blank crop, so the start-up check and the
    warm-up pass. It stands for a hung driver or TensorRT call, which cannot be produced here."""
    import onnx
    from onnx import TensorProto, helper

    from fer_ros.core.labels import EXPRESSIONS
    from fer_ros.core.spec import METADATA_KEY, ModelSpec
    body = helper.make_graph(
        [helper.make_node('Identity', ['cond_in'], ['cond_out']),
         helper.make_node('Add', ['acc_in', 'one'], ['acc_out'])],
        'spin', [helper.make_tensor_value_info('i', TensorProto.INT64, []),
                 helper.make_tensor_value_info('cond_in', TensorProto.BOOL, []),
                 helper.make_tensor_value_info('acc_in', TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info('cond_out', TensorProto.BOOL, []),
         helper.make_tensor_value_info('acc_out', TensorProto.FLOAT, [])],
        [helper.make_tensor('one', TensorProto.FLOAT, [], [1.0])])
    nodes = [
        helper.make_node('Abs', ['input'], ['magnitude']),
        helper.make_node('ReduceSum', ['magnitude'], ['total'], keepdims=0),
        helper.make_node('Mul', ['total', 'scale'], ['trips_f']),
        helper.make_node('Cast', ['trips_f'], ['trips'], to=TensorProto.INT64),
        helper.make_node('Loop', ['trips', 'true', 'zero'], ['spun'], body=body),
        helper.make_node('Flatten', ['input'], ['flat']),
        helper.make_node('MatMul', ['flat', 'none'], ['zeros']),          # float[N, 7] of zeros
        helper.make_node('Mul', ['spun', 'nothing'], ['zero_spin']),
        helper.make_node('Add', ['zeros', 'zero_spin'], ['logits']),
        helper.make_node('Softmax', ['logits'], ['probabilities'], axis=1),
    ]
    inits = [helper.make_tensor('scale', TensorProto.FLOAT, [], [1e5]),
             helper.make_tensor('true', TensorProto.BOOL, [], [True]),
             helper.make_tensor('zero', TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor('nothing', TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor('none', TensorProto.FLOAT, [64 * 64, len(EXPRESSIONS)],
                                np.zeros(64 * 64 * len(EXPRESSIONS), np.float32).tolist())]
    graph = helper.make_graph(nodes, 'hang', [helper.make_tensor_value_info('input', TensorProto.FLOAT,
                                                                               ['N', 1, 64, 64])],
                              [helper.make_tensor_value_info('probabilities', TensorProto.FLOAT, ['N', 7])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    spec = ModelSpec(name='hangs_on_faces', labels=EXPRESSIONS, height=64, width=64, channels=1, mean=(0.5,),
                     std=(0.5,), extra={'purpose': 'test: inference that does not return on a face'})
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, spec.to_json()
    onnx.checker.check_model(model)
    path = tmp_path / 'hangs_on_faces.onnx'
    onnx.save(model, str(path))
    return str(path)


# --- refused at start -----------------------------------------------------------------------------------

def test_a_model_that_cannot_show_stop_is_refused_at_start(tmp_path):
    words = ('angry', 'contempt', 'scared', 'happy', 'sad', 'surprised', 'neutral')
    node = start_node(tmp_path, {'model_path': relabelled_model(tmp_path, words)})
    assert node.popen.wait(120) == 1, node.output()
    assert "contain ['contempt']" in node.output() and 'cannot start' in node.output()


def test_a_commands_file_without_stop_is_refused_at_start(tmp_path, collector):
    text = (REPO / 'config' / 'commands.yaml').read_text()
    text = text.replace('scared:    {command: STOP}', 'scared:    {command: null}')
    text = text.replace('angry:     {command: STOP, min_confidence: 0.55, confirm_s: 0.3}',
                        'angry:     {command: REJECT}')
    path = tmp_path / 'commands.yaml'
    path.write_text(text)
    node = start_node(tmp_path, {'commands_file': str(path)})
    assert node.popen.wait(120) == 1, node.output()
    assert 'no expression maps to STOP' in node.output()
    # the managed node: configure fails, and says why in /diagnostics
    life_node = Proc([lifecycle_executable()] + ros_args({**FAST_DIAG, 'commands_file': str(path)}, None, PARAMS_FILE),
                     tmp_path / 'life.log', cwd=tmp_path)
    try:
        assert not Lifecycle(collector).transition('configure', life_node)
        collector.wait_for(lambda: 'no expression maps to STOP' in latest_diag(collector).get('_message', ''),
                           30, life_node, 'the reason in diagnostics')
    finally:
        assert life_node.stop() == 0


# --- inference that never returns ------------------------------------------------------------------------

def test_a_hung_inference_gives_hold_and_error_and_fails_deactivation(tmp_path, collector):
    node = Proc([lifecycle_executable()] + ros_args({**FAST_DIAG, 'model_path': hanging_model(tmp_path)}, None,
                                                    PARAMS_FILE), tmp_path / 'life.log', cwd=tmp_path)
    camera = None
    life = Lifecycle(collector)
    try:
        assert life.transition('configure', node) and life.transition('activate', node)
        collector.wait_node_ready(node)
        camera = start_camera(tmp_path, {'rate_hz': 30.0, 'frame_id': 'cam'})      # the astronaut: hangs
        collector.wait_for(lambda: 'in processing' in latest_diag(collector).get('_message', ''), 60, node,
                           'diagnostics ERROR for the stall')
        from diagnostic_msgs.msg import DiagnosticStatus
        assert latest_diag(collector)['_level'] == DiagnosticStatus.ERROR
        # the command clock goes on without the stuck frame: HOLD now, heartbeats after it
        collector.wait_for(lambda: sum(m.command == 'HOLD' and m.heartbeat for _, m in collector.snapshot()[1]) >= 2,
                           30, node, 'HOLD heartbeats during the stall')
        camera.stop()
        after = len(collector.snapshot()[1])
        started = time.monotonic()
        assert not life.transition('deactivate', node)         # the worker cannot stop: FAILURE, models kept
        assert time.monotonic() - started < 30
        assert any(m.command == 'HOLD' and not m.heartbeat for _, m in collector.snapshot()[1][after:])
        collector.wait_for(lambda: 'did not stop' in latest_diag(collector).get('_message', ''), 30, node,
                           'the failed deactivation in diagnostics')
    finally:
        if camera is not None:
            camera.stop()
        node.popen.kill()          # its worker is inside a Loop of minutes
        node.stop()


# --- a flood of malformed frames ------------------------------------------------------------------------

@pytest.mark.slow
def test_two_minutes_of_malformed_frames_with_diagnostics_at_their_highest_rate(tmp_path, collector):
    """~thousands of malformed frames per second for 120 s (test/malformed_flood.py, its own process) while
    the node publishes /diagnostics every 0.1 s: it never exits, its diagnostics keep coming (judged by
    their stamps: what the node published; when they arrived here is printed), and its error window counts
    the bad frames all (not saturated)."""
    seconds = 120.0
    node = start_node(tmp_path, FAST_DIAG)
    flood = None
    try:
        collector.wait_node_ready(node)
        flood = Proc([sys.executable, str(REPO / 'test' / 'malformed_flood.py')], tmp_path / 'flood.log')
        collector.wait_for(lambda: collector.node.count_publishers('/image') > 0, 30, flood, 'the flood to start')
        flood_start = time.time()
        end = time.monotonic() + seconds
        peak, seen = 0, 0
        while time.monotonic() < end:
            assert node.popen.poll() is None, node.output()[-3000:]
            assert flood.popen.poll() is None, flood.output()[-3000:]
            diags = collector.snapshot()[2]
            if len(diags) > seen:
                seen = len(diags)
                peak = max(peak, int(latest_diag(collector).get('errors_last_10s', '0')))
            time.sleep(0.05)
        assert flood.stop() == 0, flood.output()[-3000:]
        values = latest_diag(collector)
        assert int(values['decode_errors']) > 1000 and peak > 1000, (values, peak, flood.output())
        during = [(t, m) for t, m in collector.snapshot()[2] if t >= flood_start]
        received = np.diff([t for t, _ in during])
        stamped = np.diff(sorted(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in during))
        print(f'{flood.output().strip()}; diagnostics during the flood: {len(during)}; between their stamps '
              f'median {np.median(stamped):.3f} s, max {stamped.max():.3f} s; between receptions max '
              f'{received.max():.3f} s')
        assert stamped.max() < 5.0, stamped.max()       # the node never stopped publishing them for long
        assert node.stop() == 0
        assert 'Traceback' not in node.output()
    finally:
        if flood is not None:
            flood.stop()
        node.stop()
