"""API contract checks: fer_ros's TensorRT and CUDA code against the REAL TensorRT and cuda-python Python modules
(issue 18). TensorRT cannot be installed here, so this is what checks the TensorRT code in CI.

- TensorRT bindings 10.3 (JetPack 6.1/6.2), the newest 10.x, 11.0 and the newest 11.x, over null stand-in
  libraries (test/api_contract_envs.py): every TensorRT name, enum and call form in fer_ros/backends
  (test/api_contract_probe.py reads them from the source) exists with a fitting signature; only what
  TENSORRT_10_ONLY declares may be missing on 11. Then the real code runs against the real module up to where
  a null library stops it: the version check, the fp16 conversion, the int8 gate, and the Builder / Runtime
  failures become BackendErrors (the bindings raise TypeError there).
- The lean runtime (real libraries, loads on a CPU): the run-time half's names, and the real ``nptype`` on
  bf16 tensors (TypeError) becoming a BackendError.
- cuda-python 12.6.2.post1 (requirements-jetson-trt.txt), the newest 12.x and the newest 13.x: the names and
  call forms of cuda_runtime.py; real calls return CUDA errors here and must come back as BackendErrors; the
  stream handle raises no DeprecationWarning on 13.

Marked slow (`make test`, not test-fast): the first run downloads ~90 MB into <venv>/api-contract (seconds
from a nearby index); later runs reuse it. Skips only where a wheel cannot be fetched, with pip's reason.
"""
from __future__ import annotations

import json
import os
import re

import pytest
from api_contract_envs import REPO, cuda_env, lean_runtime_env, tensorrt_bindings_env

from fer_ros.backends.cuda_runtime import CUDA_PYTHON_RANGE
from fer_ros.backends.selection import TENSORRT_RANGE
from fer_ros.backends.tensorrt_engine import TENSORRT_10_ONLY

pytestmark = pytest.mark.slow

BACKENDS = os.path.join(REPO, 'fer_ros', 'backends')
TENSORRT_FILES = [os.path.join(BACKENDS, f) for f in ('tensorrt_engine.py', 'tensorrt_calibration.py',
                                                      'tensorrt_runtime.py', 'tensorrt_backend.py')]
RUNTIME_FILES = [os.path.join(BACKENDS, f) for f in ('tensorrt_runtime.py', 'tensorrt_backend.py')]
CUDA_FILES = [os.path.join(BACKENDS, 'cuda_runtime.py')]
# (version, CUDA major of its bindings wheel): the lowest supported, the newest 10, the first and newest 11
TENSORRT_VERSIONS = [('10.3.0', 12), ('10.16.1.11', 12), ('11.0.0.114', 13), ('11.4.0.106', 13)]
LEAN_RUNTIME = ('11.4.0.106', 13)
CUDA_PYTHON = [['cuda-python==12.6.2.post1'], ['cuda-bindings==12.9.10', 'cuda-pathfinder==1.9.1'],
               ['cuda-bindings==13.5.0', 'cuda-pathfinder==1.9.1']]
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')


def _numbers(version: str) -> tuple[int, int]:
    major, minor = version.split('.')[:2]
    return int(major), int(minor)


def test_the_checked_versions_span_the_stated_ranges():
    assert _numbers(TENSORRT_VERSIONS[0][0]) == TENSORRT_RANGE[0]                    # the lowest supported
    assert {_numbers(v)[0] for v, _ in TENSORRT_VERSIONS} == set(range(TENSORRT_RANGE[0][0], TENSORRT_RANGE[1][0]))
    assert all(TENSORRT_RANGE[0] <= _numbers(v) < TENSORRT_RANGE[1] for v, _ in TENSORRT_VERSIONS)
    cuda = [_numbers(specs[0].split('==')[1]) for specs in CUDA_PYTHON]
    assert cuda[0] == CUDA_PYTHON_RANGE[0] and all(CUDA_PYTHON_RANGE[0] <= v < CUDA_PYTHON_RANGE[1] for v in cuda)
    assert {v[0] for v in cuda} == set(range(CUDA_PYTHON_RANGE[0][0], CUDA_PYTHON_RANGE[1][0]))
    # the install files pin inside the ranges
    with open(os.path.join(REPO, 'requirements-trt.txt')) as f:
        trt_lines = f.read()
    for name, low, high in re.findall(r'^(tensorrt-cu1\d|cuda-python)>=([\d.]+),<([\d.]+)', trt_lines, re.M):
        rng = TENSORRT_RANGE if name.startswith('tensorrt') else CUDA_PYTHON_RANGE
        assert rng[0] <= _numbers(low + '.0') and _numbers(high + '.0') <= rng[1], (name, low, high)
    with open(os.path.join(REPO, 'requirements-jetson-trt.txt')) as f:
        jetson = re.search(r'^cuda-python==([\d.]+)', f.read(), re.M).group(1)
    assert CUDA_PYTHON_RANGE[0] <= _numbers(jetson) < CUDA_PYTHON_RANGE[1]


def _missing(report: dict) -> dict[str, str]:
    return {u['use']: f"{u['why']} (used at {', '.join(u['where'])})" for u in report['uses'] if not u['ok']}


@pytest.mark.parametrize('version,cuda_major', TENSORRT_VERSIONS, ids=[v for v, _ in TENSORRT_VERSIONS])
def test_tensorrt_names_and_call_forms_exist_in_the_real_bindings(version, cuda_major):
    env = tensorrt_bindings_env(version, cuda_major)
    report = env.probe('tensorrt', 'trt', TENSORRT_FILES)
    assert report['version'] == version
    uses = {u['use'] for u in report['uses']}
    assert len(uses) >= 45, sorted(uses)          # the probe found the code's uses (not an empty pass)
    missing = _missing(report)
    allowed = TENSORRT_10_ONLY if version.startswith('11.') else set()
    assert not set(missing) - allowed, {k: v for k, v in missing.items() if k not in allowed}
    if version.startswith('10.'):
        assert TENSORRT_10_ONLY <= uses           # the declared set is what the int8 path really uses


SCRIPT = r'''
import json, sys, tempfile, os
from fer_ros.backends.base import BackendError
from fer_ros.backends.selection import import_tensorrt
from fer_ros.backends.tensorrt_engine import build_engine, has_implicit_int8
from fer_ros.backends.tensorrt_runtime import TensorRTEngine

class NoGpu:              # what open_cuda() gives on a GPU machine, minus the GPU: the build stops at TensorRT
    def device_name(self):
        return 'no GPU'
    def close(self):
        pass

trt = import_tensorrt()
out = {'version': trt.__version__, 'implicit_int8': has_implicit_int8(trt)}
onnx, calib = sys.argv[1], sys.argv[2]
for precision in ('fp32', 'fp16', 'int8'):
    try:
        build_engine(onnx, os.path.join(tempfile.mkdtemp(), 'x.engine'), precision=precision,
                     calib_dir=calib if precision == 'int8' else None, cuda=NoGpu())
        out[precision] = 'built?!'
    except BackendError as exc:
        out[precision] = 'BackendError: ' + str(exc)
try:
    TensorRTEngine(b'plan', 'x.engine', trt, NoGpu())
    out['runtime'] = 'created?!'
except BackendError as exc:
    out['runtime'] = 'BackendError: ' + str(exc)
print(json.dumps(out))
'''


@pytest.mark.parametrize('version,cuda_major', TENSORRT_VERSIONS, ids=[v for v, _ in TENSORRT_VERSIONS])
def test_the_real_code_runs_against_the_real_module_up_to_the_null_library(version, cuda_major, tmp_path):
    if not os.path.isfile(DEFAULT_ONNX):
        pytest.skip(f'{DEFAULT_ONNX} missing: run `make setup`')
    import cv2
    import numpy as np
    calib = tmp_path / 'crops'
    calib.mkdir()
    cv2.imwrite(str(calib / 'a.png'), np.full((64, 64, 3), 128, np.uint8))
    env = tensorrt_bindings_env(version, cuda_major)
    done = env.run('-c', SCRIPT, DEFAULT_ONNX, str(calib))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out['version'] == version and out['implicit_int8'] == version.startswith('10.')
    for precision in ('fp32', 'fp16'):            # fp16: the real fp16 ONNX conversion ran before the builder
        assert 'cannot create a Builder' in out[precision], out[precision]
    if version.startswith('10.'):
        assert 'cannot create a Builder' in out['int8'], out['int8']
    else:
        assert 'has no calibrated INT8' in out['int8'] and 'Q/DQ' in out['int8'], out['int8']
    assert 'cannot create a Runtime' in out['runtime'], out['runtime']


LEAN_SCRIPT = r'''
import json
import os
import tensorrt_lean_libs  # noqa: F401  (loads the real libnvinfer_lean)
import tensorrt_lean_bindings as trt
from fer_ros.backends.base import BackendError
from fer_ros.backends.tensorrt_runtime import create_runtime, tensor_dtype
out = {'version': trt.__version__, 'half': str(tensor_dtype(trt, trt.DataType.HALF, 'x')),
       'float': str(tensor_dtype(trt, trt.DataType.FLOAT, 'x'))}
try:
    tensor_dtype(trt, trt.DataType.BF16, 'x.engine: out')
    out['bf16'] = 'no error?!'
except BackendError as exc:
    out['bf16'] = str(exc)
runtime = create_runtime(trt, trt.Logger(trt.Logger.WARNING), 'x')
out['runtime'] = type(runtime).__name__
print(json.dumps(out), flush=True)
# Without a CUDA driver TensorRT still returns a Runtime, and destroying it crashes the process: leave without
# destructors. (fer_ros opens CUDA through cuda-python before it creates a Runtime, so it never holds such a one.)
os._exit(0)
'''


def test_the_runtime_half_against_the_real_lean_runtime():
    env = lean_runtime_env(*LEAN_RUNTIME)
    report = env.probe('tensorrt_lean_bindings', 'trt', RUNTIME_FILES)
    assert len(report['uses']) >= 15 and not _missing(report), _missing(report)
    done = env.run('-c', LEAN_SCRIPT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out['version'] == LEAN_RUNTIME[0] and (out['half'], out['float']) == ('float16', 'float32')
    assert 'has no numpy equivalent' in out['bf16'], out['bf16']
    assert out['runtime'] == 'Runtime'            # created for real; the library logs the missing CUDA driver


CUDA_SCRIPT = r'''
import json, warnings
warnings.simplefilter('error', DeprecationWarning)
try:
    from cuda.bindings import runtime as rt
except ImportError:
    from cuda import cudart as rt
from fer_ros.backends.base import BackendError
from fer_ros.backends.cuda_runtime import CudaStream, native_handle, open_cuda
out = {'handle': native_handle(rt.cudaStream_t(0))}
try:
    open_cuda()
    out['open'] = 'opened?!'
except BackendError as exc:
    out['open'] = 'BackendError: ' + str(exc)
stream = CudaStream.__new__(CudaStream)       # the calls themselves, each on the real bindings
stream._rt, stream._stream = rt, rt.cudaStream_t(0)
for name, call in (('malloc', lambda: stream.malloc(16)), ('host_alloc', lambda: stream.host_alloc(16)),
                   ('device_name', stream.device_name), ('synchronize', stream.synchronize)):
    try:
        call()
        out[name] = 'ok'
    except (BackendError, RuntimeError) as exc:   # RuntimeError: cuda-python 12.6 without a CUDA driver
        out[name] = type(exc).__name__ + ': ' + str(exc)
print(json.dumps(out))
'''


@pytest.mark.parametrize('specs', CUDA_PYTHON, ids=[s[0] for s in CUDA_PYTHON])
def test_cuda_python_names_and_calls(specs):
    env = cuda_env(specs)
    report = env.probe('cuda.bindings.runtime', 'cudart', CUDA_FILES)
    names = {u['use'] for u in report['uses']}
    assert {'cudaMalloc', 'cudaMallocHost', 'cudaMemcpyAsync', 'cudaStreamCreate'} <= names, names
    assert not _missing(report), _missing(report)
    done = env.run('-c', CUDA_SCRIPT)
    assert done.returncode == 0, done.stderr[-3000:]       # no DeprecationWarning (they are errors here)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out['handle'] == 0
    assert out['open'].startswith('BackendError: CUDA'), out['open']
    for name in ('malloc', 'host_alloc', 'device_name', 'synchronize'):
        assert out[name].startswith(('BackendError: CUDA', 'RuntimeError: ')), (name, out[name])
