"""TensorRT engine building (offline, like the EngineBuilder of NVIDIA's samples): ONNX -> cached engine file.

Engines
    ``build_engine`` parses an ONNX model (the classifier or the face detector), adds one optimisation
    profile per dynamic input (``classifier_profiles``: batch 1..max_batch; ``detector_profiles``: 32 px up
    to the detector's ``input_side_limit``), and writes a fer_ros engine file (engine_file.py): the plan
    with the ONNX file's metadata and the cache key inside, so the two cannot be separated.

Precision (TensorRT 10 and 11 alike, except INT8)
    fp32: the ONNX as it is. fp16: an fp16 copy of the ONNX (``fp16_onnx``: ONNX Runtime's float16
    converter, inputs and outputs kept float32) built as a strongly typed network, the only way TensorRT 11
    takes (it removed the FP16 builder flag; TensorRT 10 deprecated it). int8: TensorRT 10 only, the
    classifier only: implicit INT8 with entropy calibration on a folder of face crops
    (tensorrt_calibration) and FP16 where INT8 has no kernel. TensorRT 11 builds INT8 only from an ONNX
    with Q/DQ nodes, which fer_ros does not make: there int8 fails with a message saying so.

Versions
    TensorRT 10.3 (JetPack 6.1/6.2) up to 11.x (selection.TENSORRT_RANGE, checked at import); test/test_api_contract.py
    checks every TensorRT name and call form used here against the real bindings of 10.3, the newest 10.x,
    11.0 and the newest 11.x. ``TENSORRT_10_ONLY`` lists what only the int8 path touches. The CUDA device is
    device 0 (choose another with CUDA_VISIBLE_DEVICES).

Cache
    ``ensure_engine`` looks for ``<cache>/<stem>.<precision>.<key16>.engine`` where the key is the sha256 of:
    the ONNX file's sha256, the TensorRT version, the GPU name, the precision, the profiles, the fp16
    converter and (int8) the calibration images' sha256. Any change gives a new key, so the engine is
    rebuilt; a matching engine loads in a second. The folder is ``engine_cache_dir`` (node parameter
    ``tensorrt_engine_cache_dir``), else $FER_ROS_ENGINE_CACHE, else $XDG_CACHE_HOME/fer_ros/engines
    (~/.cache/fer_ros/engines), created when missing. ``fer-build-engine`` fills it offline.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import tempfile
import time

from fer_ros.backends.base import BackendError
from fer_ros.backends.cuda_runtime import open_cuda
from fer_ros.backends.engine_file import prepare_cache_dir, read_engine_header, write_engine_file
from fer_ros.backends.onnxruntime_backend import read_onnx_metadata
from fer_ros.backends.selection import import_tensorrt
from fer_ros.backends.tensorrt_calibration import (
    DEFAULT_MAX_CALIB_IMAGES,
    calibration_batches,
    calibration_digest,
    calibration_files,
    load_calibration_images,
    make_calibrator,
)
from fer_ros.core.backend_options import PRECISIONS, BackendOptions
from fer_ros.core.spec import METADATA_KEY, ModelSpec
from fer_ros.core.validate import field_limits
from fer_ros.io.files import sha256_file

log = logging.getLogger(__name__)

# What only the TensorRT 10 int8 path uses (TensorRT 11 removed implicit INT8 and the weak-typing flags);
# the API contract check allows exactly these to be missing on 11.
TENSORRT_10_ONLY = frozenset({'BuilderFlag.FP16', 'BuilderFlag.INT8', 'IBuilderConfig.int8_calibrator',
                              'IBuilderConfig.set_calibration_profile', 'IInt8EntropyCalibrator2'})
KEY_FORMAT = 2
OPT_BATCH = 4                    # kernels are tuned for this many faces per frame (an HRI camera sees 1-4)
CALIB_BATCH = 8
DEFAULT_MAX_BATCH = field_limits(BackendOptions, 'max_batch').default
DEFAULT_WORKSPACE_MB = 1024

Profiles = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def has_implicit_int8(trt) -> bool:
    """TensorRT 10's calibrated INT8 (flags + IInt8EntropyCalibrator2); TensorRT 11 has none."""
    return hasattr(trt.BuilderFlag, 'INT8') and hasattr(trt, 'IInt8EntropyCalibrator2')


def int8_unsupported(version: str) -> str:
    return (f"TensorRT {version} has no calibrated INT8 (TensorRT 11 removed it: INT8 comes only from an ONNX with "
            "Q/DQ nodes, which fer_ros does not make): use precision 'fp16', or TensorRT 10 for int8")


def onnx_inputs(onnx_path: str) -> dict[str, list]:
    """{input name: shape with str/None for dynamic axes} through ONNX Runtime (CPU)."""
    import onnxruntime as ort
    try:
        session = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    except Exception as exc:  # ORT raises its own exception types
        raise BackendError(f'{onnx_path}: ONNX Runtime cannot load it ({exc})') from exc
    return {i.name: list(i.shape) for i in session.get_inputs()}


def onnx_metadata(onnx_path: str) -> dict[str, str]:
    """The ONNX file's metadata map (where the fer_ros model spec lives), as a BackendError naming the file."""
    try:
        return read_onnx_metadata(onnx_path)
    except FileNotFoundError as exc:
        raise BackendError(f'ONNX model not found: {onnx_path}') from exc
    except ValueError as exc:
        raise BackendError(str(exc)) from exc


def read_model_spec(onnx_path: str) -> ModelSpec:
    """The classifier ModelSpec stored in an ONNX file's metadata.

    Raises:
        BackendError: missing file, or no valid fer_ros metadata.
    """
    try:
        return ModelSpec.from_metadata(onnx_metadata(onnx_path), onnx_path)
    except ValueError as exc:
        raise BackendError(str(exc)) from exc


def classifier_profiles(onnx_path: str, spec: ModelSpec, max_batch: int) -> Profiles:
    """The batch profile of a classifier (1, OPT_BATCH, max_batch); {} when its batch axis is fixed.

    Raises:
        BackendError: the ONNX input contradicts the ModelSpec (name, C/H/W).
    """
    inputs = onnx_inputs(onnx_path)
    if list(inputs) != [spec.input_name]:
        raise BackendError(f'{onnx_path}: inputs {list(inputs)}, metadata input_name {spec.input_name!r}')
    shape = inputs[spec.input_name]
    chw = (spec.channels, spec.height, spec.width)
    if len(shape) != 4 or tuple(shape[1:]) != chw:
        raise BackendError(f'{onnx_path}: input shape {shape} contradicts its metadata '
                           f'(N, {chw[0]}, {chw[1]}, {chw[2]})')
    if isinstance(shape[0], int) and shape[0] > 0:
        log.warning('%s: the batch axis is fixed at %d; the engine runs batches of %d (max_batch ignored)',
                    onnx_path, shape[0], shape[0])
        return {}
    return {spec.input_name: ((1, *chw), (min(OPT_BATCH, max_batch), *chw), (max_batch, *chw))}


def detector_profiles(input_name: str, side_limit: int) -> Profiles:
    """The face detector's profile: one BGR image from 32x32 up to ``side_limit`` squared (a multiple of 32),
    tuned for 640x480-like frames."""
    side = -(-int(side_limit) // 32) * 32
    return {input_name: ((1, 3, 32, 32), (1, 3, min(side, 480), side), (1, 3, side, side))}


def engine_key_fields(*, onnx_sha256: str, tensorrt_version: str, gpu_name: str, precision: str, profiles: Profiles,
                      converter: str = '', calibration_sha256: str | None = None) -> dict:
    """Everything an engine depends on, as a JSON-able dict (stored in the engine file's header)."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    return {'format': KEY_FORMAT, 'onnx_sha256': onnx_sha256, 'tensorrt_version': str(tensorrt_version),
            'gpu_name': str(gpu_name), 'precision': precision,
            'profiles': {name: [list(s) for s in shapes] for name, shapes in sorted(profiles.items())},
            'converter': converter if precision == 'fp16' else '',
            'calibration_sha256': calibration_sha256 if precision == 'int8' else None}


def engine_cache_key(fields: dict) -> str:
    """Hex sha256 of the key fields (order-independent)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(',', ':')).encode()).hexdigest()


def engine_cache_path(cache_dir: str, onnx_path: str, precision: str, key: str) -> str:
    """``<cache_dir>/<onnx stem>.<precision>.<first 16 hex of key>.engine``."""
    stem = os.path.splitext(os.path.basename(onnx_path))[0]
    return os.path.join(cache_dir, f'{stem}.{precision}.{key[:16]}.engine')


def fp16_converter() -> str:
    import onnxruntime as ort
    return f'onnxruntime {ort.__version__} float16 keep_io_types'


def fp16_onnx(onnx_path: str, out_path: str) -> str:
    """An fp16 copy of ``onnx_path`` for a strongly typed build: weights and activations float16, inputs and
    outputs float32 (Cast nodes at the edges), metadata kept. ONNX Runtime's own converter
    (``onnxruntime.transformers.float16``), so no extra dependency."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(onnx_path), keep_io_types=True)
    onnx.save(model, out_path)
    return out_path


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


def _key_fields(trt, cuda, onnx_path: str, precision: str, profiles: Profiles, calib_dir: str | None) -> dict:
    # int8 without calib_dir was refused before (check_build_args)
    calib = calibration_digest(calibration_files(calib_dir)) if precision == 'int8' and calib_dir else None
    return engine_key_fields(onnx_sha256=sha256_file(onnx_path), tensorrt_version=trt.__version__,
                             gpu_name=cuda.device_name(), precision=precision, profiles=profiles,
                             converter=fp16_converter() if precision == 'fp16' else '', calibration_sha256=calib)


def build_engine(onnx_path: str, engine_path: str, *, precision: str = 'fp16', profiles: Profiles | None = None,
                 calib_dir: str | None = None, workspace_mb: int = DEFAULT_WORKSPACE_MB,
                 max_calib_images: int = DEFAULT_MAX_CALIB_IMAGES, cuda=None) -> dict:
    """Build a TensorRT engine from an ONNX model and write the fer_ros engine file ``engine_path``.

    Args:
        onnx_path: ONNX file with fer_ros metadata (a classifier's ``fer_ros`` or the detector's).
        precision: 'fp32' | 'fp16' | 'int8' (see the module docstring).
        profiles: {input name: (min, opt, max) shape} for the dynamic inputs (None: the classifier's batch
            profile at DEFAULT_MAX_BATCH).
        calib_dir: folder of face crops (int8, classifier only).
        workspace_mb: builder workspace memory limit.
        cuda: an ``open_cuda()`` helper to use (None: opened and closed here).
    Returns:
        The header stored in the engine file (key, key_fields, metadata, build time...).
    Raises:
        ValueError: bad arguments. BackendError: TensorRT/CUDA missing or out of range, unparsable ONNX, I/O
            that contradicts the metadata, int8 where it is not supported, or a failed build.
    """
    if workspace_mb < 16:
        raise ValueError(f'workspace_mb must be >= 16, got {workspace_mb}')
    metadata = onnx_metadata(onnx_path)
    spec = ModelSpec.from_metadata(metadata, onnx_path) if METADATA_KEY in metadata else None
    if profiles is None:
        if spec is None:
            raise ValueError(f'{onnx_path}: not a fer_ros classifier; pass the profiles of its inputs')
        profiles = classifier_profiles(onnx_path, spec, DEFAULT_MAX_BATCH)
    if precision == 'int8' and spec is None:
        raise ValueError(f'{onnx_path}: int8 calibration needs a classifier (face crops); build the detector '
                         'with fp16 or fp32')
    check_build_args(precision, max(p[2][0] for p in profiles.values()) if profiles else 1, calib_dir)
    trt = import_tensorrt()
    if precision == 'int8' and not has_implicit_int8(trt):
        raise BackendError(f'{onnx_path}: {int8_unsupported(trt.__version__)}')
    own_cuda = cuda is None
    cuda = cuda or open_cuda()
    try:
        fields = _key_fields(trt, cuda, onnx_path, precision, profiles, calib_dir)
        start = time.monotonic()
        log.info('building a TensorRT %s %s engine from %s (profiles %s); this takes a while',
                 trt.__version__, precision, onnx_path, fields['profiles'])
        with tempfile.TemporaryDirectory(prefix='fer_trt_') as tmp:
            source = fp16_onnx(onnx_path, os.path.join(tmp, 'fp16.onnx')) if precision == 'fp16' else onnx_path
            plan = _build_plan(trt, cuda, source, onnx_path, spec, precision, profiles, calib_dir, workspace_mb,
                               max_calib_images, engine_path + '.calib')
        built = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
        return write_engine_file(engine_path, plan, {
            'metadata': metadata, 'key_fields': fields, 'key': engine_cache_key(fields),
            'onnx_path': os.path.abspath(onnx_path), 'built_utc': built,
            'build_s': round(time.monotonic() - start, 1), 'plan_bytes': len(plan)})
    finally:
        if own_cuda:
            cuda.close()


def _create_builder(trt, logger, where: str):
    try:
        return trt.Builder(logger)
    except TypeError as exc:   # the bindings' way of saying libnvinfer returned no builder (no CUDA, no GPU)
        raise BackendError(f'{where}: TensorRT {trt.__version__} cannot create a Builder ({exc}); is a CUDA device '
                           'visible and the driver new enough?') from exc


def _build_plan(trt, cuda, source: str, onnx_path: str, spec: ModelSpec | None, precision: str, profiles: Profiles,
                calib_dir: str | None, workspace_mb: int, max_calib_images: int, calib_cache: str) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = _create_builder(trt, logger, onnx_path)
    flags = 0
    if precision != 'int8' and int(trt.__version__.split('.')[0]) == 10:
        # strongly typed: the types stored in the ONNX decide (the fp16 copy gives fp16); always so on 11
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.path.abspath(source)):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f'{onnx_path}: TensorRT cannot parse it: {errors}')
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    if spec is not None:
        if [t.name for t in inputs] != [spec.input_name] or spec.output_name not in [t.name for t in outputs]:
            raise BackendError(f'{onnx_path}: inputs {[t.name for t in inputs]} outputs {[t.name for t in outputs]}; '
                               f'its metadata names input {spec.input_name!r} and output {spec.output_name!r}')
    dynamic = [t.name for t in inputs if -1 in tuple(t.shape)]
    if sorted(dynamic) != sorted(profiles):
        raise BackendError(f'{onnx_path}: dynamic inputs {dynamic}, profiles given for {sorted(profiles)}')

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profiles.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    calibrator = None
    if precision == 'int8':
        assert spec is not None and calib_dir is not None    # check_build_args requires calib_dir for int8
        chw = (spec.channels, spec.height, spec.width)
        fixed = tuple(inputs[0].shape)[0]
        calib_batch = min(CALIB_BATCH, profiles[spec.input_name][2][0]) if profiles else fixed
        images = load_calibration_images(calib_dir, spec, max_calib_images)
        log.info('INT8 calibration on %d face crop(s) from %s', len(images), calib_dir)
        calibrator = make_calibrator(trt, cuda, calibration_batches(images, calib_batch), calib_cache)
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        if profiles:
            # calibration runs at one shape; give it its own single-shape profile
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


def ensure_engine(onnx_path: str, *, precision: str = 'fp16', profiles: Profiles, cache_dir: str | None = None,
                  calib_dir: str | None = None, force: bool = False, cuda=None, start_up: bool = False,
                  **build_kwargs) -> tuple[str, bool]:
    """The cached engine for this ONNX file, precision, profiles, TensorRT and GPU; built when missing or when
    the key changed (or ``force``).

    start_up: called while a node starts; a build then warns that it belongs offline.
    Returns:
        (engine path, whether it was built now).
    Raises:
        as ``build_engine``.
    """
    if not os.path.isfile(onnx_path):
        raise BackendError(f'ONNX model not found: {onnx_path}')
    trt = import_tensorrt()
    if precision == 'int8' and not has_implicit_int8(trt):
        raise BackendError(f'{onnx_path}: {int8_unsupported(trt.__version__)}')
    own_cuda = cuda is None
    cuda = cuda or open_cuda()
    try:
        fields = _key_fields(trt, cuda, onnx_path, precision, profiles, calib_dir)
        key = engine_cache_key(fields)
        path = engine_cache_path(prepare_cache_dir(cache_dir), onnx_path, precision, key)
        if not force and os.path.isfile(path):
            try:
                if read_engine_header(path).get('key') == key:
                    log.info('cached TensorRT engine %s', path)
                    return path, False
            except BackendError as exc:
                log.warning('rebuilding %s: %s', path, exc)
        if start_up:
            log.warning('no up-to-date TensorRT engine for %s in %s: building it now (minutes). Build it offline '
                        'with: fer-build-engine %s%s', onnx_path, os.path.dirname(path), onnx_path,
                        {'fp32': '', 'fp16': ' --fp16', 'int8': ' --int8 --calib DIR'}[precision])
        build_engine(onnx_path, path, precision=precision, profiles=profiles, calib_dir=calib_dir, cuda=cuda,
                     **build_kwargs)
        return path, True
    finally:
        if own_cuda:
            cuda.close()
