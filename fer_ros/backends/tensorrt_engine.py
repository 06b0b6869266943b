"""TensorRT engine building (offline, like the EngineBuilder of NVIDIA's samples): ONNX -> cached engine.

Engines
    ``build_engine`` parses the ONNX file, adds one optimisation profile for the batch axis
    (min 1, opt ``OPT_BATCH``, max ``max_batch``; faces per frame vary), sets the precision flags
    (``fp16``: FP16 kernels allowed; ``int8``: INT8 with entropy calibration on a folder of face crops
    (tensorrt_calibration), FP16 for layers without INT8 kernels) and writes ``<engine>`` plus a
    sidecar ``<engine>.json`` that holds the model's ModelSpec (labels, input size, normalisation) and
    the cache key fields, because an engine file cannot carry the ONNX metadata.

Cache
    ``ensure_engine('model.onnx')`` looks for ``<cache>/<stem>.<precision>.<key16>.engine`` where the
    key is the sha256 of: the ONNX file's sha256, the TensorRT version, the GPU name, the precision,
    the max batch and (INT8) the calibration images' sha256. Any change gives a new key, so the
    engine is rebuilt; a matching engine is loaded in a second. The cache folder is
    ``engine_cache_dir`` (node parameter ``tensorrt_engine_cache_dir``), else $FER_ROS_ENGINE_CACHE,
    else $XDG_CACHE_HOME/fer_ros/engines (default ~/.cache/fer_ros/engines). ``fer-build-engine``
    fills the same cache offline so a node never builds at start-up.

Versions
    Written for TensorRT 10. TensorRT 11 removed the weak-typing builder flags (FP16, INT8) and
    implicit INT8 calibration: there only ``precision='fp32'`` builds (the network keeps the types
    stored in the ONNX file); 'fp16'/'int8' raise a BackendError saying so. The CUDA device is
    device 0 (choose another with CUDA_VISIBLE_DEVICES).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import time

from fer_ros.backends.base import BackendError
from fer_ros.backends.cuda_runtime import open_cuda
from fer_ros.backends.onnxruntime_backend import read_onnx_spec
from fer_ros.backends.tensorrt_calibration import (
    DEFAULT_MAX_CALIB_IMAGES,
    calibration_batches,
    calibration_digest,
    calibration_files,
    load_calibration_images,
    make_calibrator,
)
from fer_ros.core.backend_options import PRECISIONS, BackendOptions
from fer_ros.core.spec import ModelSpec
from fer_ros.core.validate import field_limits
from fer_ros.io.files import atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

SIDECAR_FORMAT = 1
OPT_BATCH = 4                    # kernels are tuned for this many faces per frame (an HRI camera sees 1-4)
CALIB_BATCH = 8
DEFAULT_MAX_BATCH = field_limits(BackendOptions, 'max_batch').default
DEFAULT_WORKSPACE_MB = 1024
CACHE_ENV = 'FER_ROS_ENGINE_CACHE'

INSTALL_HINT = (
    'TensorRT is not importable ({cause}). On a Jetson it comes with JetPack (python3-libnvinfer); '
    "on x86_64 with NVIDIA drivers: pip install 'tensorrt-cu12>=10,<11' and "
    "'cuda-python>=12,<13' (TensorRT 10; TensorRT 11 dropped the FP16/INT8 builder flags). "
    "Without TensorRT use backend 'onnxruntime'.")


def import_tensorrt():
    """The ``tensorrt`` module (>= 10).

    Raises:
        BackendError: not importable (the message says how to install it) or older than 10.
    """
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or OSError when libnvinfer is missing
        raise BackendError(INSTALL_HINT.format(cause=f'{type(exc).__name__}: {exc}')) from exc
    if _major(trt.__version__) < 10:
        raise BackendError(f'TensorRT {trt.__version__} is too old: fer_ros uses the TensorRT 10 named-tensor API. '
                           + INSTALL_HINT.format(cause='version < 10'))
    return trt


def _major(version: str) -> int:
    try:
        return int(str(version).split('.')[0])
    except ValueError:
        return 0


def read_model_spec(onnx_path: str) -> ModelSpec:
    """The ModelSpec stored in an ONNX file's metadata (read through ONNX Runtime, a dependency).

    Raises:
        BackendError: missing file, or no valid fer_ros metadata.
    """
    try:
        return read_onnx_spec(onnx_path)
    except (ValueError, FileNotFoundError) as exc:
        raise BackendError(str(exc)) from exc


def engine_key_fields(*, onnx_sha256: str, tensorrt_version: str, gpu_name: str, precision: str, max_batch: int,
                      calibration_sha256: str | None = None) -> dict:
    """Everything an engine depends on, as a JSON-able dict (stored in the sidecar)."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    return {'format': SIDECAR_FORMAT, 'onnx_sha256': onnx_sha256, 'tensorrt_version': str(tensorrt_version),
            'gpu_name': str(gpu_name), 'precision': precision, 'max_batch': int(max_batch),
            'calibration_sha256': calibration_sha256 if precision == 'int8' else None}


def _key_fields(trt, cuda, onnx_path: str, precision: str, max_batch: int, calib_dir: str | None) -> dict:
    """The key fields of the engine this machine would build for these arguments."""
    calib = calibration_digest(calibration_files(calib_dir)) if precision == 'int8' else None
    return engine_key_fields(onnx_sha256=sha256_file(onnx_path), tensorrt_version=trt.__version__,
                             gpu_name=cuda.device_name(), precision=precision, max_batch=max_batch,
                             calibration_sha256=calib)


def engine_cache_key(fields: dict) -> str:
    """Hex sha256 of the key fields (order-independent)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(',', ':')).encode()).hexdigest()


def default_engine_cache_dir() -> str:
    """$FER_ROS_ENGINE_CACHE, else $XDG_CACHE_HOME/fer_ros/engines, else ~/.cache/fer_ros/engines."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'fer_ros', 'engines')


def engine_cache_path(cache_dir: str, onnx_path: str, precision: str, key: str) -> str:
    """``<cache_dir>/<onnx stem>.<precision>.<first 16 hex of key>.engine``."""
    stem = os.path.splitext(os.path.basename(onnx_path))[0]
    return os.path.join(cache_dir, f'{stem}.{precision}.{key[:16]}.engine')


def sidecar_path(engine_path: str) -> str:
    return engine_path + '.json'


def write_sidecar(engine_path: str, spec: ModelSpec, fields: dict, **extra) -> dict:
    """Write ``<engine>.json``: the ModelSpec (as the ONNX metadata map), key fields and key, build facts."""
    data = {'format': SIDECAR_FORMAT, 'metadata': spec.to_metadata(), 'key_fields': fields,
            'key': engine_cache_key(fields), **extra}
    atomic_write_bytes(sidecar_path(engine_path), json.dumps(data, indent=2, sort_keys=True).encode())
    return data


def read_sidecar(engine_path: str) -> tuple[ModelSpec, dict]:
    """The ModelSpec and the whole sidecar of an engine.

    Raises:
        BackendError: no sidecar, or one that is not valid; the message names the file.
    """
    path = sidecar_path(engine_path)
    if not os.path.isfile(path):
        raise BackendError(f'{engine_path}: no {os.path.basename(path)} next to it with the model spec; build '
                           'engines with fer-build-engine, which writes both')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        if data.get('format') != SIDECAR_FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {SIDECAR_FORMAT}")
        return ModelSpec.from_metadata(data['metadata'], path), data
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackendError(f'{path}: invalid engine sidecar ({type(exc).__name__}: {exc})') from exc


def check_build_args(precision: str, max_batch: int, calib_dir: str | None, building: bool = True) -> None:
    """Raises ValueError naming the bad argument (``building=False``: a prebuilt engine, no calibration)."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not 1 <= max_batch <= 4096:
        raise ValueError(f'max_batch must be an int in 1..4096, got {max_batch!r}')
    if building and precision == 'int8' and not calib_dir:
        raise ValueError("int8_calib_dir (a folder of face crops) is required for precision 'int8'")
    if calib_dir and not os.path.isdir(calib_dir):
        raise ValueError(f'int8_calib_dir: calibration folder not found: {calib_dir}')


def build_engine(onnx_path: str, engine_path: str, *, precision: str = 'fp16', max_batch: int = DEFAULT_MAX_BATCH,
                 calib_dir: str | None = None, workspace_mb: int = DEFAULT_WORKSPACE_MB,
                 max_calib_images: int = DEFAULT_MAX_CALIB_IMAGES, cuda=None) -> dict:
    """Build a TensorRT engine from an ONNX classifier and write ``engine_path`` + ``engine_path.json``.

    Args:
        onnx_path: ONNX file with fer_ros metadata (its input's batch axis dynamic, or fixed).
        engine_path: where to write the serialized engine.
        precision: 'fp32' | 'fp16' | 'int8' (INT8 also allows FP16 for layers without INT8 kernels).
        max_batch: largest batch the engine accepts (dynamic batch axis only; a fixed axis is kept).
        calib_dir: folder of face crops (INT8 only); see ``load_calibration_images``.
        workspace_mb: builder workspace memory limit.
        cuda: an ``open_cuda()`` helper to use (None: opened and closed here).
    Returns:
        The sidecar dict (key, key_fields, build time...).
    Raises:
        ValueError: bad arguments. BackendError: TensorRT/CUDA missing, unparsable ONNX, I/O that
            contradicts the ModelSpec, or a failed build.
    """
    check_build_args(precision, max_batch, calib_dir)
    if workspace_mb < 16:
        raise ValueError(f'workspace_mb must be >= 16, got {workspace_mb}')
    spec = read_model_spec(onnx_path)
    trt = import_tensorrt()
    if precision != 'fp32' and not hasattr(trt.BuilderFlag, 'FP16'):
        raise BackendError(f"TensorRT {trt.__version__} has no FP16/INT8 builder flags (removed in TensorRT 11): "
                           "build with precision 'fp32' (types stored in the ONNX are kept; convert the ONNX to "
                           "FP16 beforehand for FP16 kernels) or install TensorRT 10")
    own_cuda = cuda is None
    cuda = cuda or open_cuda()
    try:
        fields = _key_fields(trt, cuda, onnx_path, precision, max_batch, calib_dir)
        start = time.monotonic()
        log.info('building a TensorRT %s %s engine from %s (max batch %d); this takes a while',
                 trt.__version__, precision, onnx_path, max_batch)
        plan = _build_plan(trt, cuda, onnx_path, spec, precision, max_batch, calib_dir, workspace_mb,
                           max_calib_images, engine_path + '.calib')
        atomic_write_bytes(engine_path, plan)
        seconds = time.monotonic() - start
        built = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
        return write_sidecar(engine_path, spec, fields, onnx_path=os.path.abspath(onnx_path), built_utc=built,
                             build_s=round(seconds, 1), engine_bytes=len(plan))
    finally:
        if own_cuda:
            cuda.close()


def _build_plan(trt, cuda, onnx_path: str, spec: ModelSpec, precision: str, max_batch: int,
                calib_dir: str | None, workspace_mb: int, max_calib_images: int, calib_cache: str) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.path.abspath(onnx_path)):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f'{onnx_path}: TensorRT cannot parse it: {errors}')
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    if [t.name for t in inputs] != [spec.input_name]:
        raise BackendError(f'{onnx_path}: inputs {[t.name for t in inputs]}, metadata input_name {spec.input_name!r}')
    if spec.output_name not in [t.name for t in outputs]:
        raise BackendError(f'{onnx_path}: outputs {[t.name for t in outputs]}, metadata output_name '
                           f'{spec.output_name!r}')
    shape = tuple(inputs[0].shape)
    chw = (spec.channels, spec.height, spec.width)
    if len(shape) != 4 or shape[1:] != chw:
        raise BackendError(f'{onnx_path}: input shape {shape} contradicts its metadata '
                           f'(N, {chw[0]}, {chw[1]}, {chw[2]})')

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    dynamic = shape[0] == -1
    if dynamic:
        profile = builder.create_optimization_profile()
        profile.set_shape(spec.input_name, (1, *chw), (min(OPT_BATCH, max_batch), *chw), (max_batch, *chw))
        config.add_optimization_profile(profile)
    else:
        log.warning('%s: the batch axis is fixed at %d; the engine runs batches of %d (max_batch ignored)',
                    onnx_path, shape[0], shape[0])
    if precision in ('fp16', 'int8'):
        config.set_flag(trt.BuilderFlag.FP16)
    calibrator = None
    if precision == 'int8':
        calib_batch = min(CALIB_BATCH, max_batch) if dynamic else shape[0]
        images = load_calibration_images(calib_dir, spec, max_calib_images)
        log.info('INT8 calibration on %d face crop(s) from %s', len(images), calib_dir)
        calibrator = make_calibrator(trt, cuda, calibration_batches(images, calib_batch), calib_cache)
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        if dynamic:
            # Calibration runs at one shape; give it its own single-shape profile.
            calib_profile = builder.create_optimization_profile()
            calib_shape = (calib_batch, *chw)
            calib_profile.set_shape(spec.input_name, calib_shape, calib_shape, calib_shape)
            config.set_calibration_profile(calib_profile)
    try:
        plan = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.release()
    if plan is None:
        raise BackendError(f'{onnx_path}: the TensorRT {precision} build failed (see the TensorRT messages above)')
    return bytes(plan)


def ensure_engine(onnx_path: str, *, precision: str = 'fp16', max_batch: int = DEFAULT_MAX_BATCH,
                  cache_dir: str | None = None, calib_dir: str | None = None, force: bool = False,
                  cuda=None, start_up: bool = False, **build_kwargs) -> tuple[str, bool]:
    """The cached engine for this ONNX file, precision, TensorRT, GPU and batch size; built when missing
    or when the key changed (or ``force``).

    start_up: called while a node starts; a build then warns that it belongs offline.
    Returns:
        (engine path, whether it was built now).
    Raises:
        as ``build_engine``.
    """
    check_build_args(precision, max_batch, calib_dir)
    if not os.path.isfile(onnx_path):
        raise BackendError(f'ONNX model not found: {onnx_path}')
    trt = import_tensorrt()
    own_cuda = cuda is None
    cuda = cuda or open_cuda()
    try:
        fields = _key_fields(trt, cuda, onnx_path, precision, max_batch, calib_dir)
        key = engine_cache_key(fields)
        path = engine_cache_path(cache_dir or default_engine_cache_dir(), onnx_path, precision, key)
        if not force and os.path.isfile(path) and os.path.isfile(sidecar_path(path)):
            try:
                _, sidecar = read_sidecar(path)
                if sidecar.get('key') == key:
                    log.info('cached TensorRT engine %s', path)
                    return path, False
            except BackendError as exc:
                log.warning('rebuilding %s: %s', path, exc)
        if start_up:
            log.warning('no up-to-date TensorRT engine for %s in %s: building it now (minutes). Build it offline '
                        'with: fer-build-engine %s%s', onnx_path, os.path.dirname(path), onnx_path,
                        {'fp32': '', 'fp16': ' --fp16', 'int8': ' --fp16 --int8 --calib DIR'}[precision])
        build_engine(onnx_path, path, precision=precision, max_batch=max_batch, calib_dir=calib_dir, cuda=cuda,
                     **build_kwargs)
        return path, True
    finally:
        if own_cuda:
            cuda.close()
