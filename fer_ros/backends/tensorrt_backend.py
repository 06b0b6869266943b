"""Native TensorRT backend: ONNX -> cached engine (FP32 / FP16 / INT8), run with the TensorRT 10
named-tensor API and device buffers from cuda-python (or pycuda). No torch at run time.

Engines
    ``build_engine`` parses the ONNX file, adds one optimisation profile for the batch axis
    (min 1, opt ``OPT_BATCH``, max ``max_batch``; faces per frame vary), sets the precision flags
    (``fp16``: FP16 kernels allowed; ``int8``: INT8 with entropy calibration on a folder of face crops,
    FP16 for layers without INT8 kernels) and writes ``<engine>`` plus a sidecar ``<engine>.json`` that
    holds the model's ModelSpec (labels, input size, normalisation) and the cache key fields, because
    an engine file cannot carry the ONNX metadata.

Cache
    ``TensorRTBackend('model.onnx')`` looks for ``<cache>/<stem>.<precision>.<key16>.engine`` where
    the key is the sha256 of: the ONNX file's sha256, the TensorRT version, the GPU name, the
    precision, the max batch and (INT8) the calibration images' sha256. Any change gives a new key,
    so the engine is rebuilt; a matching engine is loaded in a second. The cache folder is
    ``engine_cache_dir``, else $FER_ROS_ENGINE_CACHE, else $XDG_CACHE_HOME/fer_ros/engines (default
    ~/.cache/fer_ros/engines). ``fer-build-engine`` fills the same cache offline so a node never
    builds at start-up.

Loading checks
    At load the engine's I/O tensors must be exactly one input named ``spec.input_name`` of shape
    (N|-1, C, H, W) and one output named ``spec.output_name`` of shape (N|-1, K), float32 or float16,
    as the sidecar's ModelSpec says; anything else is a BackendError naming the engine and both sides.

Versions
    Written for TensorRT 10 (named tensors: ``set_input_shape``, ``set_tensor_address``,
    ``execute_async_v3``). TensorRT 11 removed the weak-typing builder flags (FP16, INT8) and implicit
    INT8 calibration: there only ``precision='fp32'`` builds (the network keeps the types stored in
    the ONNX file); 'fp16'/'int8' raise a BackendError saying so. The CUDA device is device 0 (choose
    another with CUDA_VISIBLE_DEVICES).
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Iterator

import numpy as np

from fer_ros.backends.base import Backend, BackendError, check_batch, softmax
from fer_ros.core.backend_options import ENGINE_SUFFIXES, PRECISIONS, BackendOptions
from fer_ros.core.files import IMAGE_SUFFIXES, atomic_write_bytes, sha256_file
from fer_ros.core.spec import METADATA_KEY, ModelSpec, spec_from_metadata
from fer_ros.core.validate import field_limits

log = logging.getLogger(__name__)

SIDECAR_FORMAT = 1
OPT_BATCH = 4                    # kernels are tuned for this many faces per frame (an HRI camera sees 1-4)
CALIB_BATCH = 8
DEFAULT_MAX_BATCH = field_limits(BackendOptions, 'max_batch').default
DEFAULT_WORKSPACE_MB = 1024
DEFAULT_MAX_CALIB_IMAGES = 512
CACHE_ENV = 'FER_ROS_ENGINE_CACHE'

INSTALL_HINT = (
    'TensorRT is not importable ({cause}). On a Jetson it comes with JetPack (python3-libnvinfer); '
    "on x86_64 with NVIDIA drivers: pip install 'tensorrt-cu12>=10,<11' and "
    "'cuda-python>=12,<13' (TensorRT 10; TensorRT 11 dropped the FP16/INT8 builder flags). "
    "Without TensorRT use backend 'onnxruntime'.")
CUDA_HINT = ("TensorRT needs cuda-python or pycuda for device buffers ({cause}): "
             "pip install 'cuda-python>=12,<13' (match the CUDA major version of your TensorRT)")


# --- imports and CUDA ---------------------------------------------------------------------------------

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


class _CudaPython:
    """Device memory and one stream through cuda-python's runtime API (``cuda.bindings.runtime``,
    or ``cuda.cudart`` in cuda-python < 12.6). Host arrays are ordinary numpy arrays."""

    name = 'cuda-python'

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self._rt = cudart
        self._stream = self._call(cudart.cudaStreamCreate(), 'cudaStreamCreate')

    def _call(self, result, what: str):
        err, rest = result[0], result[1:]
        if err != self._rt.cudaError_t.cudaSuccess:
            raise BackendError(f'CUDA {what} failed: {getattr(err, "name", err)}')
        return rest[0] if len(rest) == 1 else rest

    @property
    def handle(self) -> int:
        return int(self._stream)

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        yield  # the runtime API uses the device's primary context on every thread

    def device_name(self) -> str:
        prop = self._call(self._rt.cudaGetDeviceProperties(0), 'cudaGetDeviceProperties')
        name = prop.name
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).split(b'\0', 1)[0].decode('utf-8', 'replace')
        return str(name).strip()

    def malloc(self, nbytes: int) -> int:
        return int(self._call(self._rt.cudaMalloc(int(nbytes)), 'cudaMalloc'))

    def free(self, ptr: int) -> None:
        self._call(self._rt.cudaFree(ptr), 'cudaFree')

    def htod(self, ptr: int, host: np.ndarray) -> None:
        self._call(self._rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes,
                                            self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream),
                   'cudaMemcpyAsync(host to device)')

    def dtoh(self, host: np.ndarray, ptr: int) -> None:
        self._call(self._rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes,
                                            self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream),
                   'cudaMemcpyAsync(device to host)')

    def synchronize(self) -> None:
        self._call(self._rt.cudaStreamSynchronize(self._stream), 'cudaStreamSynchronize')

    def close(self) -> None:
        if self._stream is not None:
            self._call(self._rt.cudaStreamDestroy(self._stream), 'cudaStreamDestroy')
            self._stream = None


class _PyCuda:
    """The same operations through pycuda, on the device's primary context (pushed around each use, so
    any thread may call; the TensorRT runtime shares that context)."""

    name = 'pycuda'

    def __init__(self) -> None:
        import pycuda.driver as cuda

        self._cuda = cuda
        cuda.init()
        self._device = cuda.Device(0)
        self._context = self._device.retain_primary_context()
        self._allocations: dict[int, object] = {}
        with self.activate():
            self._stream = cuda.Stream()

    @property
    def handle(self) -> int:
        return int(self._stream.handle)

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def device_name(self) -> str:
        return str(self._device.name()).strip()

    def malloc(self, nbytes: int) -> int:
        allocation = self._cuda.mem_alloc(int(nbytes))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, ptr: int) -> None:
        allocation = self._allocations.pop(ptr, None)
        if allocation is not None:
            allocation.free()

    def htod(self, ptr: int, host: np.ndarray) -> None:
        # Synchronous copy: pycuda's async copies want page-locked memory; it completes before the
        # kernels are queued on the stream.
        self._cuda.memcpy_htod(ptr, host)

    def dtoh(self, host: np.ndarray, ptr: int) -> None:
        self._stream.synchronize()
        self._cuda.memcpy_dtoh(host, ptr)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def close(self) -> None:
        if self._stream is not None:
            with self.activate():
                for ptr in list(self._allocations):
                    self.free(ptr)
                self._stream = None
            with contextlib.suppress(Exception):  # the primary context may already be gone at exit
                self._context.detach()


def open_cuda():
    """A CUDA helper on device 0: cuda-python if importable, else pycuda.

    Raises:
        BackendError: neither is importable, or CUDA fails to start (no GPU / driver).
    """
    if importlib.util.find_spec('cuda') is not None:
        maker = _CudaPython
    elif importlib.util.find_spec('pycuda') is not None:
        maker = _PyCuda
    else:
        raise BackendError(CUDA_HINT.format(cause='neither cuda-python nor pycuda is installed'))
    try:
        return maker()
    except BackendError:
        raise
    except Exception as exc:  # no driver, no device, broken install
        raise BackendError(f'CUDA does not start through {maker.name}: {type(exc).__name__}: {exc}') from exc


# --- model spec, cache key, sidecar ------------------------------------------------------------------

def read_model_spec(onnx_path: str) -> ModelSpec:
    """The ModelSpec stored in an ONNX file: through ONNX Runtime when importable, else the ``onnx`` package.

    Raises:
        BackendError: neither package importable, missing file, or no valid fer_ros metadata.
    """
    try:
        if importlib.util.find_spec('onnxruntime') is not None:
            from fer_ros.core.spec import read_onnx_spec

            return read_onnx_spec(onnx_path)
        if importlib.util.find_spec('onnx') is None:
            raise BackendError(f'{onnx_path}: reading the model spec needs onnxruntime or onnx; pip install onnx')
        return read_spec_with_onnx(onnx_path)
    except (ValueError, FileNotFoundError) as exc:
        raise BackendError(str(exc)) from exc


def read_spec_with_onnx(onnx_path: str) -> ModelSpec:
    """The ModelSpec in an ONNX file's metadata, read with the ``onnx`` package (weights not loaded).

    Raises:
        FileNotFoundError: no file. ValueError: not an ONNX model, or no/invalid fer_ros metadata.
    """
    import onnx

    if not os.path.isfile(onnx_path):
        raise FileNotFoundError(f'model file not found: {onnx_path}')
    try:
        model = onnx.load(onnx_path, load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ValueError(f'{onnx_path}: not a loadable ONNX model ({exc})') from exc
    return spec_from_metadata({p.key: p.value for p in model.metadata_props}, onnx_path)


def engine_key_fields(*, onnx_sha256: str, tensorrt_version: str, gpu_name: str, precision: str, max_batch: int,
                      calibration_sha256: str | None = None) -> dict:
    """Everything an engine depends on, as a JSON-able dict (stored in the sidecar)."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    return {'format': SIDECAR_FORMAT, 'onnx_sha256': onnx_sha256, 'tensorrt_version': str(tensorrt_version),
            'gpu_name': str(gpu_name), 'precision': precision, 'max_batch': int(max_batch),
            'calibration_sha256': calibration_sha256 if precision == 'int8' else None}


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
    data = {'format': SIDECAR_FORMAT, 'metadata': {METADATA_KEY: spec.to_json()}, 'key_fields': fields,
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
        return spec_from_metadata(data['metadata'], path), data
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackendError(f'{path}: invalid engine sidecar ({type(exc).__name__}: {exc})') from exc


# --- INT8 calibration data -------------------------------------------------------------------------

def calibration_files(calib_dir: str) -> list[str]:
    """Image files (by suffix, case-insensitive) directly in ``calib_dir``, sorted by name.

    Raises:
        ValueError: not a folder, or no image file in it.
    """
    if not os.path.isdir(calib_dir):
        raise ValueError(f'calibration folder not found: {calib_dir}')
    files = sorted(os.path.join(calib_dir, n) for n in os.listdir(calib_dir)
                   if n.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(calib_dir, n)))
    if not files:
        raise ValueError(f'{calib_dir}: no image files ({", ".join(IMAGE_SUFFIXES)}) for INT8 calibration')
    return files


def calibration_digest(files: list[str]) -> str:
    """Hex sha256 over the files' names and contents (part of the INT8 engine key)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.basename(path).encode() + b'\0' + sha256_file(path).encode())
    return digest.hexdigest()


def load_calibration_images(calib_dir: str, spec: ModelSpec, max_images: int = DEFAULT_MAX_CALIB_IMAGES) -> np.ndarray:
    """Face crops from a folder, preprocessed exactly as the pipeline does (``fer_ros.core.preprocess``).

    Each file is one face crop (any size, colour or gray); it is treated as a face box covering the
    whole image with no margin: squared by edge replication, resized to the model's input size,
    converted to gray/RGB and normalised with the spec's mean/std. Files that cannot be decoded are
    skipped with a warning naming them.

    Args:
        calib_dir: folder of images; the first ``max_images`` by name are used.
        spec: the model's input contract.
    Returns:
        float32[N, spec.channels, spec.height, spec.width], N >= 1.
    Raises:
        ValueError: no folder, no image file, or no decodable image.
    """
    import cv2

    from fer_ros.core.preprocess import crop_faces

    if max_images < 1:
        raise ValueError(f'max_images must be >= 1, got {max_images}')
    files = calibration_files(calib_dir)[:max_images]
    batches, bad = [], []
    for path in files:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            bad.append(os.path.basename(path))
            continue
        height, width = image.shape[:2]
        batches.append(crop_faces(image, [(0.0, 0.0, float(width), float(height))], spec, margin=0.0))
    if bad:
        log.warning('%s: skipped %d file(s) that are not readable images: %s', calib_dir, len(bad), ', '.join(bad))
    if not batches:
        raise ValueError(f'{calib_dir}: none of the {len(files)} image file(s) could be decoded: {", ".join(bad)}')
    if len(batches) < 50:
        log.warning('%s: only %d calibration image(s); INT8 ranges from so few faces may be poor '
                    '(use a few hundred crops of the deployment camera)', calib_dir, len(batches))
    return np.concatenate(batches)


def calibration_batches(images: np.ndarray, batch_size: int) -> np.ndarray:
    """Split float32[N, C, H, W] into full batches float32[M, batch_size, C, H, W]; the last batch is
    completed with images from the start (the calibrator needs a fixed batch size)."""
    if batch_size < 1 or len(images) < 1:
        raise ValueError(f'need batch_size >= 1 and at least one image, got {batch_size} and {len(images)}')
    batches = -(-len(images) // batch_size)
    index = np.arange(batches * batch_size) % len(images)
    return np.ascontiguousarray(images[index].reshape(batches, batch_size, *images.shape[1:]))


def _make_calibrator(trt, cuda, batches: np.ndarray, cache_path: str):
    """An IInt8EntropyCalibrator2 feeding ``batches`` float32[M, B, C, H, W] from one device buffer."""
    try:
        from tqdm import tqdm
    except ImportError:  # progress is nice to have, not needed
        tqdm = None

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            with cuda.activate():
                self.device = cuda.malloc(batches[0].nbytes)
            self.bar = tqdm(total=len(batches), desc='INT8 calibration', unit='batch') if tqdm else None

        def get_batch_size(self) -> int:
            return int(batches.shape[1])

        def get_batch(self, names):
            if self.index >= len(batches):
                if self.bar is not None:
                    self.bar.close()
                return None
            with cuda.activate():
                cuda.htod(self.device, batches[self.index])
                cuda.synchronize()
            self.index += 1
            if self.bar is not None:
                self.bar.update(1)
            return [self.device]

        def read_calibration_cache(self):
            return None  # always calibrate: the engine key already covers model and data

        def write_calibration_cache(self, cache) -> None:
            atomic_write_bytes(cache_path, bytes(cache))  # kept beside the engine for inspection / trtexec

        def release(self) -> None:
            with cuda.activate():
                cuda.free(self.device)

    return _Calibrator()


# --- building ----------------------------------------------------------------------------------------

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
        calib_files = calibration_files(calib_dir) if precision == 'int8' else []
        fields = engine_key_fields(onnx_sha256=sha256_file(onnx_path), tensorrt_version=trt.__version__,
                                   gpu_name=cuda.device_name(), precision=precision, max_batch=max_batch,
                                   calibration_sha256=calibration_digest(calib_files) if calib_files else None)
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
        calibrator = _make_calibrator(trt, cuda, calibration_batches(images, calib_batch), calib_cache)
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
        calib = calibration_digest(calibration_files(calib_dir)) if precision == 'int8' else None
        fields = engine_key_fields(onnx_sha256=sha256_file(onnx_path), tensorrt_version=trt.__version__,
                                   gpu_name=cuda.device_name(), precision=precision, max_batch=max_batch,
                                   calibration_sha256=calib)
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


# --- the backend -------------------------------------------------------------------------------------

class TensorRTBackend(Backend):
    """Runs a classifier as a TensorRT engine on CUDA device 0.

    Args:
        model_path: an .onnx file (its cached engine is loaded, or built once: see the module docstring)
            or a prebuilt .engine/.plan/.trt with its ``<engine>.json`` sidecar (from fer-build-engine).
        precision: 'fp32' | 'fp16' | 'int8' for building from ONNX (a prebuilt engine has its own).
        engine_cache_dir: where engines built from ONNX are cached (None: ``default_engine_cache_dir()``).
        max_batch: largest batch of the engine built from ONNX; larger ``infer`` batches run in chunks.
        int8_calib_dir: folder of face crops, required for 'int8'.
    Raises:
        ValueError: bad arguments (the message names the parameter).
        BackendError: TensorRT / CUDA missing, bad model file, failed build, or an engine whose I/O
            tensors contradict the ModelSpec.
    """

    name = 'tensorrt'

    def __init__(self, model_path: str, *, precision: str = 'fp16', engine_cache_dir: str | None = None,
                 max_batch: int = DEFAULT_MAX_BATCH, int8_calib_dir: str | None = None) -> None:
        suffix = os.path.splitext(str(model_path))[1].lower()
        # precision / calibration only matter when building from ONNX; a prebuilt engine has its own
        check_build_args(precision, max_batch, int8_calib_dir, building=suffix == '.onnx')
        if not os.path.isfile(model_path):
            raise BackendError(f'model file not found: {model_path}')
        if suffix != '.onnx' and suffix not in ENGINE_SUFFIXES:
            raise BackendError(f'{model_path}: the TensorRT backend takes .onnx or {"/".join(ENGINE_SUFFIXES)} files')
        self.model_path = model_path
        self._lock = threading.Lock()
        self._buffers: list[int] = []
        self._cuda = None
        trt = import_tensorrt()
        self._trt = trt
        self._cuda = open_cuda()
        try:
            if suffix == '.onnx':
                self.engine_path, _ = ensure_engine(model_path, precision=precision, max_batch=max_batch,
                                                    cache_dir=engine_cache_dir, calib_dir=int8_calib_dir,
                                                    cuda=self._cuda, start_up=True)
            else:
                self.engine_path = model_path
            self.spec, sidecar = read_sidecar(self.engine_path)
            fields = sidecar.get('key_fields', {})
            built_with = fields.get('tensorrt_version')
            if built_with and built_with != trt.__version__:
                raise BackendError(f'{self.engine_path}: built with TensorRT {built_with}, this is {trt.__version__}; '
                                   'rebuild it with fer-build-engine')
            self.precision = fields.get('precision', 'unknown')
            gpu = self._cuda.device_name()
            if fields.get('gpu_name') and fields['gpu_name'] != gpu:
                log.warning('%s was built on %s, running on %s; rebuild it for this GPU if it fails or is slow',
                            self.engine_path, fields['gpu_name'], gpu)
            self.device = f'CUDA:0 {gpu}'
            self._load(trt)
        except BaseException:
            self.close()
            raise
        log.info('TensorRT %s: %s (%s, max batch %d) on %s', trt.__version__, os.path.basename(self.engine_path),
                 self.precision, self.max_batch, self.device)

    def _load(self, trt) -> None:
        with open(self.engine_path, 'rb') as f:
            plan = f.read()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with self._cuda.activate():
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            if self._engine is None:
                raise BackendError(f'{self.engine_path}: TensorRT {trt.__version__} cannot deserialize it (built by '
                                   'another TensorRT version or for another GPU?); rebuild it with fer-build-engine')
            self._check_bindings(trt)
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise BackendError(f'{self.engine_path}: cannot create an execution context (out of GPU memory?)')
            rows = self.max_batch if self._fixed_batch is None else self._fixed_batch
            c, h, w, k = self.spec.channels, self.spec.height, self.spec.width, self.spec.num_classes
            self._d_in = self._cuda.malloc(rows * c * h * w * np.dtype(self._in_dtype).itemsize)
            self._buffers.append(self._d_in)
            self._d_out = self._cuda.malloc(rows * k * np.dtype(self._out_dtype).itemsize)
            self._buffers.append(self._d_out)
            for name, ptr in ((self.spec.input_name, self._d_in), (self.spec.output_name, self._d_out)):
                if not self._context.set_tensor_address(name, ptr):
                    raise BackendError(f'{self.engine_path}: set_tensor_address({name!r}) failed')

    def _check_bindings(self, trt) -> None:
        """The engine's I/O tensors must be what the ModelSpec says (names, ranks, C/H/W, K, dtypes)."""
        engine, spec, where = self._engine, self.spec, self.engine_path
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [spec.input_name] or outputs != [spec.output_name]:
            raise BackendError(f'{where}: engine tensors inputs={inputs} outputs={outputs}; the model spec expects '
                               f'inputs=[{spec.input_name!r}] outputs=[{spec.output_name!r}]')
        in_shape = tuple(engine.get_tensor_shape(spec.input_name))
        out_shape = tuple(engine.get_tensor_shape(spec.output_name))
        chw = (spec.channels, spec.height, spec.width)
        if len(in_shape) != 4 or in_shape[1:] != chw:
            raise BackendError(f'{where}: input {spec.input_name!r} has shape {in_shape}; the model spec expects '
                               f'(N, {chw[0]}, {chw[1]}, {chw[2]})')
        if len(out_shape) != 2 or out_shape[1] != spec.num_classes:
            raise BackendError(f'{where}: output {spec.output_name!r} has shape {out_shape}; the model spec expects '
                               f'(N, {spec.num_classes}) for labels {list(spec.labels)}')
        dtypes = {}
        for name in (spec.input_name, spec.output_name):
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            if dtype not in (np.float32, np.float16):
                raise BackendError(f'{where}: tensor {name!r} is {dtype}; float32 or float16 expected')
            dtypes[name] = dtype
        self._in_dtype, self._out_dtype = dtypes[spec.input_name], dtypes[spec.output_name]
        if in_shape[0] == -1:
            self._fixed_batch = None
            self.max_batch = int(tuple(engine.get_tensor_profile_shape(spec.input_name, 0))[2][0])
        else:
            self._fixed_batch = self.max_batch = int(in_shape[0])

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32[N, C, H, W] -> float32[N, K] probabilities (chunks of ``max_batch`` rows)."""
        batch = check_batch(batch, self.spec, type(self).__name__)
        if self._cuda is None:
            raise BackendError(f'{self.engine_path}: backend is closed')
        step = self.max_batch
        out = np.concatenate([self._run(batch[i:i + step]) for i in range(0, len(batch), step)])
        return softmax(out) if self.spec.output == 'logits' else out.astype(np.float32, copy=False)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        n = len(chunk)
        rows = n if self._fixed_batch is None else self._fixed_batch
        host_in = np.zeros((rows, *chunk.shape[1:]), self._in_dtype)
        host_in[:n] = chunk
        host_out = np.empty((rows, self.spec.num_classes), self._out_dtype)
        with self._lock, self._cuda.activate():
            if self._fixed_batch is None and not self._context.set_input_shape(self.spec.input_name, host_in.shape):
                raise BackendError(f'{self.engine_path}: set_input_shape{host_in.shape} rejected')
            self._cuda.htod(self._d_in, host_in)
            if not self._context.execute_async_v3(self._cuda.handle):
                raise BackendError(f'{self.engine_path}: execute_async_v3 failed (see the TensorRT messages)')
            self._cuda.dtoh(host_out, self._d_out)
            self._cuda.synchronize()
        return host_out[:n].astype(np.float32)

    def close(self) -> None:
        """Free the device buffers, the execution context and the stream (idempotent)."""
        cuda, self._cuda = self._cuda, None
        if cuda is None:
            return
        try:
            with cuda.activate():
                self._context = None      # TensorRT objects release their device memory in this context
                self._engine = None
                for ptr in self._buffers:
                    cuda.free(ptr)
                self._buffers.clear()
            cuda.close()
        except Exception as exc:  # closing must not raise (called from error paths and shutdown)
            log.warning('%s: releasing CUDA resources failed: %s', self.model_path, exc)
