"""TensorRT backends and fer-build-engine (issue 18: TensorRT 10 and 11).

Everything that does not need TensorRT runs here for real: the engine cache key and path, the engine file
(plan + metadata in one file), the supported version range, the fp16 ONNX a strongly typed build uses
(converted and run on ONNX Runtime here), the classifier and detector profiles, INT8 calibration image
loading and batching, argument validation, and the clear errors without TensorRT (backend and CLI). The
engine runtime's locking and buffer handling are checked on stand-ins for TensorRT and CUDA (neither can
run here); test/test_api_contract.py checks every TensorRT and cuda-python call against the real modules.
The tests that build and run engines need TensorRT (10.3..11.x) + cuda-python + an NVIDIA GPU and skip with
that reason elsewhere; they compare TensorRT to ONNX Runtime on the CPU on a small real ONNX model.
"""
from __future__ import annotations

import os
import re
import threading

import cv2
import numpy as np
import pytest

from fer_ros.backends.base import BackendError
from fer_ros.backends.engine_file import (
    MAGIC,
    default_engine_cache_dir,
    prepare_cache_dir,
    read_engine_header,
    split_engine_file,
    write_engine_file,
)
from fer_ros.backends.selection import check_tensorrt_version, probe_machine
from fer_ros.backends.tensorrt_backend import TensorRTBackend
from fer_ros.backends.tensorrt_calibration import (
    calibration_batches,
    calibration_digest,
    calibration_files,
    load_calibration_images,
)
from fer_ros.backends.tensorrt_engine import (
    classifier_profiles,
    detector_profiles,
    engine_cache_key,
    engine_cache_path,
    engine_key_fields,
    fp16_onnx,
    int8_unsupported,
    read_model_spec,
)
from fer_ros.core.labels import EXPRESSIONS
from fer_ros.core.spec import METADATA_KEY, ModelSpec
from fer_ros.io.files import sha256_file
from fer_ros.tools import build_engine as cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASTRONAUT = os.path.join(REPO, 'assets', 'astronaut.jpg')
SPEC = ModelSpec(name='tiny', channels=1, height=48, width=48, mean=(0.5,), std=(0.25,), output='logits')


TRT_REASON = probe_machine().why_not('tensorrt', brief=True) or None
needs_trt = pytest.mark.skipif(TRT_REASON is not None, reason=f'TensorRT cannot run here: {TRT_REASON}')
without_trt = pytest.mark.skipif(probe_machine().tensorrt != '',
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

PROFILE = {'input': ((1, 1, 48, 48), (4, 1, 48, 48), (32, 1, 48, 48))}


def _fields(**changes):
    base = dict(onnx_sha256='a' * 64, tensorrt_version='10.8.0.43', gpu_name='NVIDIA Orin', precision='fp16',
                profiles=PROFILE, converter='onnxruntime 1.32.0 float16 keep_io_types', calibration_sha256=None)
    base.update(changes)
    return engine_key_fields(**base)


def test_cache_key_changes_with_every_field():
    key = engine_cache_key(_fields())
    assert key == engine_cache_key(dict(reversed(list(_fields().items()))))     # order-independent
    assert re.fullmatch('[0-9a-f]{64}', key)
    variants = [_fields(onnx_sha256='b' * 64), _fields(tensorrt_version='11.4.0.106'),
                _fields(gpu_name='NVIDIA GeForce RTX 4090'), _fields(precision='fp32'),
                _fields(profiles={'input': ((1, 1, 48, 48), (4, 1, 48, 48), (8, 1, 48, 48))}),
                _fields(converter='onnxruntime 1.33.0 float16 keep_io_types'),
                _fields(precision='int8', calibration_sha256='c' * 64),
                _fields(precision='int8', calibration_sha256='d' * 64)]
    keys = {engine_cache_key(f) for f in variants}
    assert key not in keys and len(keys) == len(variants)
    # calibration data only matter for INT8, the fp16 converter only for fp16
    assert engine_cache_key(_fields(calibration_sha256='c' * 64)) == key
    assert engine_cache_key(_fields(precision='fp32', converter='x')) == engine_cache_key(_fields(precision='fp32'))
    with pytest.raises(ValueError, match='precision'):
        _fields(precision='fp8')


def test_cache_path_default_folder_and_its_creation(monkeypatch, tmp_path):
    key = engine_cache_key(_fields())
    path = engine_cache_path(str(tmp_path), '/models/light_ntwrn.onnx', 'fp16', key)
    assert path == os.path.join(str(tmp_path), f'light_ntwrn.fp16.{key[:16]}.engine')
    monkeypatch.setenv('FER_ROS_ENGINE_CACHE', str(tmp_path / 'c'))
    assert default_engine_cache_dir() == str(tmp_path / 'c')
    monkeypatch.delenv('FER_ROS_ENGINE_CACHE')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'x'))
    assert default_engine_cache_dir() == os.path.join(str(tmp_path / 'x'), 'fer_ros', 'engines')
    assert prepare_cache_dir(None) == os.path.join(str(tmp_path / 'x'), 'fer_ros', 'engines')
    assert os.path.isdir(tmp_path / 'x' / 'fer_ros' / 'engines')                     # every level made


def test_file_sha256_follows_the_bytes(tiny_onnx, tmp_path):
    import hashlib

    with open(tiny_onnx, 'rb') as f:
        assert sha256_file(tiny_onnx, chunk=1000) == hashlib.sha256(f.read()).hexdigest()
    other = make_onnx(tmp_path / 'other.onnx', seed=1)               # same graph, other weights
    assert sha256_file(other) != sha256_file(tiny_onnx)


def test_engine_file_carries_its_metadata_and_refuses_what_is_not_one(tmp_path):
    """The model spec lived in a <engine>.json sidecar that could be separated from its engine."""
    engine = str(tmp_path / 'm.engine')
    header = write_engine_file(engine, b'PLAN' * 100, {'metadata': SPEC.to_metadata(),
                                                       'key_fields': _fields(), 'key': 'k'})
    read, plan = split_engine_file(engine)
    assert read == header and plan == b'PLAN' * 100 and read_engine_header(engine)['key'] == 'k'
    moved = tmp_path / 'elsewhere' / 'renamed.plan'
    moved.parent.mkdir()
    os.replace(engine, moved)                                         # nothing left behind, nothing to lose
    assert split_engine_file(str(moved))[0]['metadata'] == SPEC.to_metadata()
    data = moved.read_bytes()
    for name, content, match in (('bare.engine', b'\x00' * 64, 'not a fer_ros engine file'),
                                 ('cut.engine', data[:20], 'truncated'),
                                 ('json.engine', MAGIC + (5).to_bytes(4, 'little') + b'{oops',
                                  'invalid fer_ros engine header'),
                                 ('empty.engine', data[:len(data) - 400], 'the engine file holds no TensorRT plan')):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(BackendError, match=f'{name}: {match}.*fer-build-engine'):
            split_engine_file(str(tmp_path / name))


def test_supported_tensorrt_versions():
    for ok in ('10.3.0', '10.16.1.11', '11.0.0.114', '11.4.0.106'):
        check_tensorrt_version(ok)
    for bad in ('8.6.1', '10.2.0', '12.0.0', 'x'):
        with pytest.raises(BackendError, match=f'TensorRT {re.escape(bad)} is not supported: fer_ros runs TensorRT '
                                               r'10\.3 up to 11\.x; TensorRT comes from JetPack'):
            check_tensorrt_version(bad)
    assert 'Q/DQ' in int8_unsupported('11.4.0.106') and "precision 'fp16'" in int8_unsupported('11.4.0.106')


def test_fp16_onnx_for_strongly_typed_builds_runs_and_keeps_float32_io(tiny_onnx, tmp_path):
    """TensorRT 11 takes fp16 only from an fp16 network: the copy is made with ONNX Runtime's converter and,
    run here on ONNX Runtime's CPU provider, gives the fp32 model's probabilities to fp16 precision."""
    import onnxruntime as ort

    half = fp16_onnx(tiny_onnx, str(tmp_path / 'half.onnx'))
    session = ort.InferenceSession(half, providers=['CPUExecutionProvider'])
    assert [i.type for i in session.get_inputs()] == ['tensor(float)'] == [o.type for o in session.get_outputs()]
    assert read_model_spec(half) == SPEC                                      # the metadata travels along
    import onnx
    weights = {init.data_type for init in onnx.load(half).graph.initializer}
    assert weights == {onnx.TensorProto.FLOAT16}
    from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    batch = _batch(6)
    np.testing.assert_allclose(OnnxRuntimeBackend(half).infer(batch), OnnxRuntimeBackend(tiny_onnx).infer(batch),
                               atol=5e-3)


def test_classifier_and_detector_profiles(tiny_onnx, tmp_path, caplog):
    assert classifier_profiles(tiny_onnx, SPEC, 16) == {'input': ((1, 1, 48, 48), (4, 1, 48, 48), (16, 1, 48, 48))}
    assert classifier_profiles(tiny_onnx, SPEC, 2)['input'][1] == (2, 1, 48, 48)
    fixed = make_onnx(tmp_path / 'fixed.onnx', batch=8)
    with caplog.at_level('WARNING'):
        assert classifier_profiles(fixed, SPEC, 16) == {}
    assert 'batch axis is fixed at 8' in caplog.text
    other = ModelSpec(name='tiny', channels=3, height=48, width=48)
    with pytest.raises(BackendError, match='contradicts its metadata'):
        classifier_profiles(tiny_onnx, other, 16)
    assert detector_profiles('image', 640) == {'image': ((1, 3, 32, 32), (1, 3, 480, 640), (1, 3, 640, 640))}
    assert detector_profiles('image', 4097)['image'][2] == (1, 3, 4128, 4128)


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
def test_backend_without_tensorrt_says_where_it_comes_from(tiny_onnx):
    with pytest.raises(BackendError, match='TensorRT is not importable') as info:
        TensorRTBackend(tiny_onnx)
    text = str(info.value)
    assert 'JetPack' in text and "NVIDIA's pip index" in text and 'requirements-trt.txt' in text
    assert '10.3 to 11.x' in text


@without_trt
def test_cli_without_tensorrt_exits_2_with_the_reason(tiny_onnx, capsys):
    assert cli.main([tiny_onnx, '--fp16']) == 2
    err = capsys.readouterr().err
    assert err.startswith('fer-build-engine: TensorRT is not importable') and 'JetPack' in err
    assert 'requirements-trt.txt' in err


@pytest.mark.parametrize('args,match', [
    (['missing.onnx'], 'ONNX file not found: missing.onnx'),
    (['{onnx}', '--int8'], '--int8 needs --calib'),
    (['{onnx}', '--calib', '{tmp}'], '--calib is only used with --int8'),
    (['{onnx}', '--int8', '--calib', '{tmp}/nope'], '--calib: folder not found'),
    (['{onnx}', '--max-batch', '0'], '--max-batch must be in 1..4096'),
    (['{onnx}', '--out', 'a.engine', '--cache-dir', '{tmp}'], '--out and --cache-dir exclude each other'),
    (['{tmp}/notes.txt'], 'expected an .onnx file'),
    (['{onnx}', '--max-side', '16'], '--max-side must be in 32..8192'),
])
def test_cli_argument_errors_exit_2(tiny_onnx, tmp_path, capsys, args, match):
    (tmp_path / 'notes.txt').write_text('x')
    argv = [a.format(onnx=tiny_onnx, tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert match.format(tmp=tmp_path) in capsys.readouterr().err


# --- the engine runtime on stand-ins for TensorRT and CUDA (neither runs here) ---------------------------------

class _Cuda:
    """Records what the runtime asks of CUDA; host memory is numpy, device memory a dict of bytes."""

    handle = 7

    def __init__(self):
        self.device, self.host_allocs, self.freed, self.freed_host = {}, 0, [], []

    def malloc(self, nbytes):
        ptr = 1000 + len(self.device)
        self.device[ptr] = np.zeros(nbytes, np.uint8)
        return ptr

    def host_alloc(self, nbytes):
        self.host_allocs += 1
        return 5000 + self.host_allocs, np.zeros(nbytes, np.uint8)

    def htod(self, ptr, host):
        self.device[ptr][:host.nbytes] = host.reshape(-1).view(np.uint8)

    def dtoh(self, host, ptr):
        host.reshape(-1).view(np.uint8)[:] = self.device[ptr][:host.nbytes]

    def synchronize(self):
        pass

    def free(self, ptr):
        self.freed.append(ptr)

    def free_host(self, ptr):
        self.freed_host.append(ptr)


def _engine_on_stand_ins(cuda, started, release):
    """A TensorRTEngine whose TensorRT objects are stand-ins: one dynamic input x[-1, 4] (profile 1..8) and an
    output y = x * 2 computed in 'device' memory; execute blocks until ``release`` is set."""
    from fer_ros.backends.tensorrt_runtime import TensorInfo, TensorRTEngine

    class Context:
        def __init__(self):
            self.shape = (8, 4)

        def set_input_shape(self, name, shape):
            self.shape = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            return self.shape

        def execute_async_v3(self, handle):
            assert handle == cuda.handle
            started.set()
            release.wait(10)
            n = int(np.prod(self.shape)) * 4
            cuda.device[1001][:n] = (cuda.device[1000][:n].view(np.float32) * 2).view(np.uint8)
            return True

    engine = TensorRTEngine.__new__(TensorRTEngine)
    engine.source, engine._cuda, engine._context, engine._engine = 'stand-in.engine', cuda, Context(), object()
    engine._lock, engine._closed = threading.Lock(), False
    engine._device, engine._host, engine._pinned = {}, {}, []
    engine.tensors = {'x': TensorInfo('x', True, (-1, 4), (8, 4), np.dtype(np.float32), ((1, 4), (8, 4))),
                      'y': TensorInfo('y', False, (-1, 4), (8, 4), np.dtype(np.float32))}
    engine._context.set_tensor_address = lambda name, ptr: True
    engine._allocate()
    return engine


def test_engine_runtime_reuses_pinned_buffers_checks_the_profile_and_closes_under_the_lock():
    """Host buffers were pageable arrays allocated per call, and close() freed device memory without the lock
    an inference on another thread held."""
    cuda = _Cuda()
    started, release = threading.Event(), threading.Event()
    release.set()
    engine = _engine_on_stand_ins(cuda, started, release)
    for n in (1, 3, 8, 2):
        out = engine.run({'x': np.full((n, 4), n, np.float32)})['y']
        assert out.shape == (n, 4) and np.all(out == 2 * n)
    assert cuda.host_allocs == 2                                   # one pinned buffer per tensor, made once
    with pytest.raises(BackendError, match=r"input 'x' of shape \(9, 4\) is outside the engine's range"):
        engine.run({'x': np.zeros((9, 4), np.float32)})
    started.clear()
    release.clear()
    result = {}
    worker = threading.Thread(target=lambda: result.update(engine.run({'x': np.ones((2, 4), np.float32)})))
    worker.start()
    assert started.wait(10)
    closer = threading.Thread(target=engine.close)
    closer.start()
    closer.join(0.5)
    assert closer.is_alive() and not cuda.freed                    # close waits for the running inference
    release.set()
    worker.join(10)
    closer.join(10)
    assert np.all(result['y'] == 2) and sorted(cuda.freed) == [1000, 1001] and len(cuda.freed_host) == 2
    with pytest.raises(BackendError, match='closed'):
        engine.run({'x': np.ones((1, 4), np.float32)})
    engine.close()                                                 # idempotent


def test_tensor_types_without_numpy_dtype_are_a_backend_error():
    """bf16 / fp8 engine tensors: TensorRT's nptype raises TypeError, which the backend fallback did not catch
    (the real nptype is exercised in test_api_contract.py's lean-runtime check)."""
    from fer_ros.backends.tensorrt_runtime import tensor_dtype

    class Trt:
        @staticmethod
        def nptype(kind):
            raise TypeError('Could not resolve TensorRT datatype to an equivalent numpy datatype.')
    with pytest.raises(BackendError, match="'out': tensor type BF16 has no numpy equivalent"):
        tensor_dtype(Trt, 'BF16', "m.engine: 'out'")


# --- with TensorRT (skip here) ------------------------------------------------------------------------------

def _ort_probabilities(onnx_path: str, batch: np.ndarray) -> np.ndarray:
    from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(onnx_path, 'cpu').infer(batch)


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 1, 48, 48)).astype(np.float32)


@needs_trt
@pytest.mark.slow
@pytest.mark.parametrize('precision,atol', [('fp32', 1e-4), ('fp16', 2e-2)])
def test_engine_matches_onnx_runtime_and_is_cached(tiny_onnx, tmp_path, precision, atol):
    cache = str(tmp_path / 'fresh' / 'cache')                      # missing folders are created
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
    assert os.path.dirname(engine) == cache and read_engine_header(engine)['metadata'][METADATA_KEY] == SPEC.to_json()
    built = os.path.getmtime(engine)
    again = TensorRTBackend(tiny_onnx, precision=precision, engine_cache_dir=cache, max_batch=8)
    again.close()
    assert again.engine_path == engine and os.path.getmtime(engine) == built     # loaded, not rebuilt
    other = TensorRTBackend(tiny_onnx, precision=precision, engine_cache_dir=cache, max_batch=4)
    other.close()
    assert other.engine_path != engine                                          # key changed: new engine


@needs_trt
@pytest.mark.slow
def test_prebuilt_engine_from_the_cli_and_tensor_check(tiny_onnx, tmp_path, capsys):
    out = str(tmp_path / 'tiny.fp16.engine')
    assert cli.main([tiny_onnx, '--fp16', '--max-batch', '4', '--out', out]) == 0
    assert out in capsys.readouterr().out
    backend = TensorRTBackend(out)
    try:
        batch = _batch(2)
        np.testing.assert_allclose(backend.infer(batch), _ort_probabilities(tiny_onnx, batch), atol=2e-2)
    finally:
        backend.close()
    # an engine file whose metadata names other tensors / another class count is refused at load
    header, plan = split_engine_file(out)
    for wrong, match in ((ModelSpec(name='tiny', channels=1, height=48, width=48, mean=(0.5,), std=(0.25,),
                                    input_name='image'), r"inputs=\['input'\]"),
                         (ModelSpec(name='tiny', labels=EXPRESSIONS[:5], channels=1, height=48, width=48,
                                    mean=(0.5,), std=(0.25,)), r'shape \(-1, 7\); the model spec expects \(N, 5\)')):
        write_engine_file(out, plan, {**header, 'metadata': wrong.to_metadata()})
        with pytest.raises(BackendError, match=match):
            TensorRTBackend(out)


@needs_trt
@pytest.mark.slow
def test_int8_engine_with_calibration_on_tensorrt_10_or_a_clear_error_on_11(tiny_onnx, tmp_path, calib_dir):
    import tensorrt

    if not tensorrt.__version__.startswith('10.'):
        with pytest.raises(BackendError, match='has no calibrated INT8'):
            TensorRTBackend(tiny_onnx, precision='int8', int8_calib_dir=calib_dir, engine_cache_dir=str(tmp_path))
        return
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
