"""TensorRT backend and fer-build-engine.

Everything that does not need TensorRT runs here for real: the engine cache key and path, the sidecar,
reading the ModelSpec (ONNX Runtime), INT8 calibration image loading and batching, argument
validation, and the clear errors without TensorRT (backend and CLI). The tests
that build and run engines need `tensorrt` (10.x) + cuda-python + an NVIDIA GPU and skip
with that reason elsewhere; they compare TensorRT to ONNX Runtime on a small real ONNX model.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re

import cv2
import numpy as np
import pytest

from fer_ros.backends.base import BackendError
from fer_ros.backends.tensorrt_backend import TensorRTBackend
from fer_ros.backends.tensorrt_calibration import (
    calibration_batches,
    calibration_digest,
    calibration_files,
    load_calibration_images,
)
from fer_ros.backends.tensorrt_engine import (
    SIDECAR_FORMAT,
    default_engine_cache_dir,
    engine_cache_key,
    engine_cache_path,
    engine_key_fields,
    read_model_spec,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from fer_ros.core.labels import EXPRESSIONS
from fer_ros.core.spec import ModelSpec
from fer_ros.io.files import sha256_file
from fer_ros.tools import build_engine as cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASTRONAUT = os.path.join(REPO, 'assets', 'astronaut.jpg')
SPEC = ModelSpec(name='tiny', channels=1, height=48, width=48, mean=(0.5,), std=(0.25,), output='logits')


def _tensorrt_reason() -> str | None:
    """Why the TensorRT tests cannot run here, or None when they can."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:
        return f'tensorrt is not importable ({type(exc).__name__}); TensorRT engine tests run where it is'
    if importlib.util.find_spec('cuda') is None:
        return 'cuda-python is not installed'
    from fer_ros.backends.cuda_runtime import open_cuda
    try:
        open_cuda().close()
    except BackendError as exc:
        return f'no usable CUDA device: {exc}'
    return None


TRT_REASON = _tensorrt_reason()
needs_trt = pytest.mark.skipif(TRT_REASON is not None, reason=TRT_REASON or '')
without_trt = pytest.mark.skipif(importlib.util.find_spec('tensorrt') is not None,
                                 reason='tensorrt is installed here; this checks the error without it')


def make_onnx(path, spec: ModelSpec = SPEC, *, metadata: bool = True, seed: int = 0, batch='N') -> str:
    """A small real classifier: Conv 3x3 -> ReLU -> global average pool -> Gemm -> logits[N, K]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    k = spec.num_classes
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (8, spec.channels, 3, 3)).astype(np.float32), 'w1'),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), 'b1'),
             numpy_helper.from_array(rng.normal(0, 0.5, (k, 8)).astype(np.float32), 'w2'),
             numpy_helper.from_array(rng.normal(0, 0.1, k).astype(np.float32), 'b2')]
    nodes = [helper.make_node('Conv', ['input', 'w1', 'b1'], ['c1'], pads=[1, 1, 1, 1]),
             helper.make_node('Relu', ['c1'], ['r1']),
             helper.make_node('GlobalAveragePool', ['r1'], ['g1']),
             helper.make_node('Flatten', ['g1'], ['f1']),
             helper.make_node('Gemm', ['f1', 'w2', 'b2'], [spec.output_name], transB=1)]
    graph = helper.make_graph(
        nodes, 'tiny',
        [helper.make_tensor_value_info(spec.input_name, TensorProto.FLOAT,
                                       [batch, spec.channels, spec.height, spec.width])],
        [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, [batch, k])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, spec.to_metadata())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture
def tiny_onnx(tmp_path):
    return make_onnx(tmp_path / 'tiny.onnx')


@pytest.fixture
def calib_dir(tmp_path):
    """Face crops as files: colour jpg, gray png, a non-square crop, a flat gray image, plus a text
    file (ignored) and a corrupt .jpg (skipped with a warning)."""
    folder = tmp_path / 'crops'
    folder.mkdir()
    image = cv2.imread(ASTRONAUT)
    face = image[30:230, 130:330]                     # the astronaut's face region
    cv2.imwrite(str(folder / 'a_face.jpg'), face)
    cv2.imwrite(str(folder / 'b_face_gray.png'), cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / 'c_wide.png'), image[40:200, 100:380])
    cv2.imwrite(str(folder / 'd_flat.png'), np.full((30, 30, 3), 128, np.uint8))
    (folder / 'notes.txt').write_text('not an image')
    (folder / 'e_broken.jpg').write_bytes(b'\xff\xd8 definitely not a jpeg')
    return str(folder)


# --- cache key, path, sidecar ---------------------------------------------------------------------------

def _fields(**changes):
    base = dict(onnx_sha256='a' * 64, tensorrt_version='10.8.0.43', gpu_name='NVIDIA Orin', precision='fp16',
                max_batch=32, calibration_sha256=None)
    base.update(changes)
    return engine_key_fields(**base)


def test_cache_key_changes_with_every_field():
    key = engine_cache_key(_fields())
    assert key == engine_cache_key(dict(reversed(list(_fields().items()))))     # order-independent
    assert re.fullmatch('[0-9a-f]{64}', key)
    variants = [_fields(onnx_sha256='b' * 64), _fields(tensorrt_version='10.9.0.34'),
                _fields(gpu_name='NVIDIA GeForce RTX 4090'), _fields(precision='fp32'), _fields(max_batch=8),
                _fields(precision='int8', calibration_sha256='c' * 64),
                _fields(precision='int8', calibration_sha256='d' * 64)]
    keys = {engine_cache_key(f) for f in variants}
    assert key not in keys and len(keys) == len(variants)
    # calibration data only matters for INT8
    assert engine_cache_key(_fields(calibration_sha256='c' * 64)) == key
    with pytest.raises(ValueError, match='precision'):
        _fields(precision='fp8')


def test_cache_path_and_default_folder(monkeypatch, tmp_path):
    key = engine_cache_key(_fields())
    path = engine_cache_path(str(tmp_path), '/models/light_ntwrn.onnx', 'fp16', key)
    assert path == os.path.join(str(tmp_path), f'light_ntwrn.fp16.{key[:16]}.engine')
    monkeypatch.setenv('FER_ROS_ENGINE_CACHE', str(tmp_path / 'c'))
    assert default_engine_cache_dir() == str(tmp_path / 'c')
    monkeypatch.delenv('FER_ROS_ENGINE_CACHE')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'x'))
    assert default_engine_cache_dir() == os.path.join(str(tmp_path / 'x'), 'fer_ros', 'engines')


def test_file_sha256_follows_the_bytes(tiny_onnx, tmp_path):
    import hashlib

    with open(tiny_onnx, 'rb') as f:
        assert sha256_file(tiny_onnx, chunk=1000) == hashlib.sha256(f.read()).hexdigest()
    other = make_onnx(tmp_path / 'other.onnx', seed=1)               # same graph, other weights
    assert sha256_file(other) != sha256_file(tiny_onnx)


def test_sidecar_round_trip_and_errors(tmp_path):
    engine = str(tmp_path / 'm.engine')
    open(engine, 'wb').write(b'plan')
    data = write_sidecar(engine, SPEC, _fields(), build_s=1.0)
    spec, read = read_sidecar(engine)
    assert spec == SPEC and read['key'] == engine_cache_key(_fields()) == data['key']
    assert read['key_fields']['gpu_name'] == 'NVIDIA Orin' and read['format'] == SIDECAR_FORMAT
    os.remove(sidecar_path(engine))
    with pytest.raises(BackendError, match=r'm\.engine\.json next to it'):
        read_sidecar(engine)
    with open(sidecar_path(engine), 'w') as f:
        json.dump({'format': SIDECAR_FORMAT, 'metadata': {}}, f)
    with pytest.raises(BackendError, match=r"m\.engine\.json: invalid engine sidecar .*no 'fer_ros' entry"):
        read_sidecar(engine)


# --- model spec from ONNX --------------------------------------------------------------------------------

def test_spec_is_read_with_onnx_runtime(tiny_onnx, tmp_path):
    assert read_model_spec(tiny_onnx) == SPEC
    bare = make_onnx(tmp_path / 'bare.onnx', metadata=False)
    with pytest.raises(BackendError, match="no 'fer_ros' entry"):
        read_model_spec(bare)
    junk = tmp_path / 'junk.onnx'
    junk.write_bytes(b'not a protobuf at all \x00\x01')
    with pytest.raises(BackendError, match='junk.onnx'):
        read_model_spec(str(junk))
    with pytest.raises(BackendError, match='not found'):
        read_model_spec(str(tmp_path / 'missing.onnx'))


# --- INT8 calibration data -------------------------------------------------------------------------------

def test_calibration_images_are_preprocessed_like_the_pipeline(calib_dir, caplog):
    files = calibration_files(calib_dir)
    assert [os.path.basename(f) for f in files] == ['a_face.jpg', 'b_face_gray.png', 'c_wide.png', 'd_flat.png',
                                                    'e_broken.jpg']
    with caplog.at_level('WARNING'):
        images = load_calibration_images(calib_dir, SPEC)
    assert 'e_broken.jpg' in caplog.text
    assert images.shape == (4, 1, 48, 48) and images.dtype == np.float32
    lo, hi = (0 - 0.5) / 0.25, (1 - 0.5) / 0.25
    assert lo <= images.min() and images.max() <= hi
    np.testing.assert_allclose(images[3], (128 / 255 - 0.5) / 0.25, atol=1e-6)    # the flat gray crop
    # the colour and the gray copy of the same face give (nearly) the same gray input
    assert np.abs(images[0] - images[1]).mean() < 0.05
    assert images[0].std() > 0.3                                                    # a real face, not flat
    rgb = load_calibration_images(calib_dir, ModelSpec(name='rgb', channels=3, height=32, width=32), max_images=2)
    assert rgb.shape == (2, 3, 32, 32)
    assert calibration_digest(files) == calibration_digest(list(files))
    assert calibration_digest(files[:2]) != calibration_digest(files)


def test_calibration_folder_errors(tmp_path):
    with pytest.raises(ValueError, match='calibration folder not found'):
        calibration_files(str(tmp_path / 'nope'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'readme.md').write_text('x')
    with pytest.raises(ValueError, match=r'empty: no image files'):
        load_calibration_images(str(empty), SPEC)
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'x.png').write_bytes(b'nope')
    with pytest.raises(ValueError, match=r'none of the 1 image file\(s\) could be decoded: x\.png'):
        load_calibration_images(str(broken), SPEC)


def test_calibration_batches_are_full():
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) * np.ones((1, 1, 2, 2), np.float32)
    batches = calibration_batches(images, 8)
    assert batches.shape == (2, 8, 1, 2, 2)
    assert [int(b[0, 0, 0]) for b in batches[1]] == [8, 9, 0, 1, 2, 3, 4, 5]
    assert calibration_batches(images[:3], 8).shape == (1, 8, 1, 2, 2)
    with pytest.raises(ValueError):
        calibration_batches(images[:0], 8)


# --- without TensorRT ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs,match', [
    ({'precision': 'fp8'}, 'precision must be one of'),
    ({'max_batch': 0}, 'max_batch must be an int'),
    ({'max_batch': 2.0}, 'max_batch must be an int'),
    ({'precision': 'int8'}, 'int8_calib_dir'),
    ({'precision': 'int8', 'int8_calib_dir': '/no/such/folder'}, 'calibration folder not found'),
])
def test_backend_rejects_bad_arguments(tiny_onnx, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TensorRTBackend(tiny_onnx, **kwargs)


def test_backend_rejects_missing_or_foreign_files(tmp_path):
    with pytest.raises(BackendError, match='model file not found'):
        TensorRTBackend(str(tmp_path / 'missing.onnx'))
    other = tmp_path / 'model.pt'
    other.write_bytes(b'x')
    with pytest.raises(BackendError, match=r'takes \.onnx or \.engine'):
        TensorRTBackend(str(other))


@without_trt
def test_backend_without_tensorrt_says_how_to_get_it(tiny_onnx):
    with pytest.raises(BackendError, match='TensorRT is not importable') as info:
        TensorRTBackend(tiny_onnx)
    assert 'JetPack' in str(info.value) and 'pip install' in str(info.value)


@without_trt
def test_cli_without_tensorrt_exits_2_with_the_reason(tiny_onnx, capsys):
    assert cli.main([tiny_onnx, '--fp16']) == 2
    err = capsys.readouterr().err
    assert err.startswith('fer-build-engine: TensorRT is not importable') and 'JetPack' in err and 'pip install' in err


@pytest.mark.parametrize('args,match', [
    (['missing.onnx'], 'ONNX file not found: missing.onnx'),
    (['{onnx}', '--int8'], '--int8 needs --calib'),
    (['{onnx}', '--calib', '{tmp}'], '--calib is only used with --int8'),
    (['{onnx}', '--int8', '--calib', '{tmp}/nope'], '--calib: folder not found'),
    (['{onnx}', '--max-batch', '0'], '--max-batch must be in 1..4096'),
    (['{onnx}', '--out', 'a.engine', '--cache-dir', '{tmp}'], '--out and --cache-dir exclude each other'),
    (['{tmp}/notes.txt'], 'expected an .onnx file'),
])
def test_cli_argument_errors_exit_2(tiny_onnx, tmp_path, capsys, args, match):
    (tmp_path / 'notes.txt').write_text('x')
    argv = [a.format(onnx=tiny_onnx, tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert match.format(tmp=tmp_path) in capsys.readouterr().err


# --- with TensorRT (skip here) ------------------------------------------------------------------------------

def _ort_probabilities(onnx_path: str, batch: np.ndarray) -> np.ndarray:
    from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(onnx_path).infer(batch)


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 1, 48, 48)).astype(np.float32)


@needs_trt
@pytest.mark.slow
@pytest.mark.parametrize('precision,atol', [('fp32', 1e-4), ('fp16', 2e-2)])
def test_engine_matches_onnx_runtime_and_is_cached(tiny_onnx, tmp_path, precision, atol):
    cache = str(tmp_path / 'cache')
    backend = TensorRTBackend(tiny_onnx, precision=precision, engine_cache_dir=cache, max_batch=8)
    try:
        assert backend.max_batch == 8 and backend.spec == SPEC and backend.precision == precision
        for n in (1, 3, 8, 19):                                       # 19 > max_batch: run in chunks
            batch = _batch(n, seed=n)
            out = backend.infer(batch)
            assert out.shape == (n, len(EXPRESSIONS)) and out.dtype == np.float32
            np.testing.assert_allclose(out.sum(axis=1), 1, atol=1e-4)
            np.testing.assert_allclose(out, _ort_probabilities(tiny_onnx, batch), atol=atol)
        engine = backend.engine_path
    finally:
        backend.close()
    assert os.path.dirname(engine) == cache and os.path.isfile(sidecar_path(engine))
    built = os.path.getmtime(engine)
    again = TensorRTBackend(tiny_onnx, precision=precision, engine_cache_dir=cache, max_batch=8)
    again.close()
    assert again.engine_path == engine and os.path.getmtime(engine) == built     # loaded, not rebuilt
    other = TensorRTBackend(tiny_onnx, precision=precision, engine_cache_dir=cache, max_batch=4)
    other.close()
    assert other.engine_path != engine                                          # key changed: new engine


@needs_trt
@pytest.mark.slow
def test_prebuilt_engine_from_the_cli_and_binding_check(tiny_onnx, tmp_path, capsys):
    out = str(tmp_path / 'tiny.fp16.engine')
    assert cli.main([tiny_onnx, '--fp16', '--max-batch', '4', '--out', out]) == 0
    assert out in capsys.readouterr().out
    backend = TensorRTBackend(out)
    try:
        batch = _batch(2)
        np.testing.assert_allclose(backend.infer(batch), _ort_probabilities(tiny_onnx, batch), atol=2e-2)
    finally:
        backend.close()
    # a sidecar whose spec names other tensors / another class count is refused at load
    with open(sidecar_path(out)) as f:
        data = json.load(f)
    for wrong, match in ((ModelSpec(name='tiny', channels=1, height=48, width=48, mean=(0.5,), std=(0.25,),
                                    input_name='image'), r"inputs=\['input'\]"),
                         (ModelSpec(name='tiny', labels=EXPRESSIONS[:5], channels=1, height=48, width=48,
                                    mean=(0.5,), std=(0.25,)), r'shape \(-1, 7\); the model spec expects \(N, 5\)')):
        data['metadata'] = wrong.to_metadata()
        with open(sidecar_path(out), 'w') as f:
            json.dump(data, f)
        with pytest.raises(BackendError, match=match):
            TensorRTBackend(out)


@needs_trt
@pytest.mark.slow
def test_int8_engine_with_calibration(tiny_onnx, tmp_path, calib_dir):
    backend = TensorRTBackend(tiny_onnx, precision='int8', int8_calib_dir=calib_dir,
                              engine_cache_dir=str(tmp_path / 'cache'), max_batch=4)
    try:
        images = load_calibration_images(calib_dir, SPEC)
        out = backend.infer(images)
        ref = _ort_probabilities(tiny_onnx, images)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out.sum(axis=1), 1, atol=1e-3)
        assert np.abs(out - ref).max() < 0.2                               # INT8 is approximate
        assert os.path.isfile(backend.engine_path + '.calib')
    finally:
        backend.close()
