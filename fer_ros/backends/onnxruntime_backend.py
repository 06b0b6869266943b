"""ONNX Runtime backends: the classifier (``OnnxRuntimeBackend``) and any model with named tensors, the face
detector (``OnnxRuntimeRunner``), on the execution provider the backend choice names:

- 'cpu': CPUExecutionProvider only (the default everywhere, whatever onnxruntime build is installed);
- 'cuda': CUDAExecutionProvider, CPU behind it for nodes it lacks;
- 'tensorrt-ep': TensorrtExecutionProvider with an engine cache and a timing cache in
  ``<engine cache>/onnxruntime-tensorrt`` (created when missing), one explicit optimisation profile and FP16
  per the precision, then CUDA and CPU behind it.
A provider that is not in this onnxruntime build, or that does not start (e.g. onnxruntime-gpu without
its CUDA / TensorRT libraries), is a BackendError naming what is missing: an explicit choice never runs
elsewhere silently (``auto`` falls back, with one warning, in fer_ros.backends).

Reads the ModelSpec from the session's own metadata (key ``fer_ros``), so the file alone defines
labels, input size, channels and normalisation. Needs only numpy + onnxruntime (never torch).
"""
from __future__ import annotations

import logging
import os

import numpy as np

from fer_ros.backends.base import Backend, BackendError, TensorRunner, check_batch, softmax
from fer_ros.backends.engine_file import prepare_cache_dir
from fer_ros.backends.selection import CPU_EP, CUDA_EP, ORT_GPU_SOURCE, TENSORRT_EP
from fer_ros.core.backend_options import ONNXRUNTIME_BACKENDS
from fer_ros.core.spec import ModelSpec

log = logging.getLogger(__name__)

def read_onnx_metadata(path: str) -> dict[str, str]:
    """The custom metadata map of an ONNX file, read with ONNX Runtime (a run-time dependency; ``onnx`` is not).

    Raises:
        FileNotFoundError: no file at ``path``. ValueError: not a loadable ONNX model.
    """
    import onnxruntime as ort

    if not os.path.isfile(path):
        raise FileNotFoundError(f'model file not found: {path}')
    try:
        session = ort.InferenceSession(path, providers=[CPU_EP])
    except Exception as exc:  # ORT raises its own exception types
        raise ValueError(f'{path}: not a loadable ONNX model ({exc})') from exc
    return dict(session.get_modelmeta().custom_metadata_map)


def read_onnx_spec(path: str) -> ModelSpec:
    """The ModelSpec in an ONNX file's metadata.

    Raises:
        FileNotFoundError: no file at ``path``. ValueError: not a loadable ONNX model, or no valid spec.
    """
    return ModelSpec.from_metadata(read_onnx_metadata(path), path)


PROVIDERS = {'cpu': (CPU_EP,), 'cuda': (CUDA_EP, CPU_EP), 'tensorrt-ep': (TENSORRT_EP, CUDA_EP, CPU_EP)}
EP_CACHE_SUBDIR = 'onnxruntime-tensorrt'


def tensorrt_provider_options(input_name: str, min_shape: tuple[int, ...], opt_shape: tuple[int, ...],
                              max_shape: tuple[int, ...], cache_dir: str | None, precision: str = 'fp16') -> dict:
    """ONNX Runtime TensorRT-EP options for a model with a dynamic input: one explicit optimisation profile
    (min/opt/max shapes of ``input_name``), the engine cache AND the timing cache in
    ``<cache_dir>/onnxruntime-tensorrt`` (created here with every parent: the provider makes only the last
    level and fails without it; without a path the timing cache would land in the working directory). The
    provider keys its engines by model hash, TensorRT version, GPU and profile and rebuilds when they change.
    precision: 'fp32' | 'fp16' ('int8' needs a calibration table: the native 'tensorrt' backend does that).

    Raises:
        ValueError: int8 or an unknown precision. BackendError: the cache folder cannot be created.
    """
    if precision not in ('fp32', 'fp16'):
        raise ValueError(f"precision must be 'fp32' or 'fp16' for the TensorRT execution provider, got {precision!r} "
                         "(int8: use backend 'tensorrt', which calibrates on tensorrt_int8_calib_dir)")
    folder = prepare_cache_dir(cache_dir, EP_CACHE_SUBDIR)

    def dims(shape):
        return f'{input_name}:' + 'x'.join(str(int(d)) for d in shape)

    return {'trt_engine_cache_enable': 'True', 'trt_engine_cache_path': folder,
            'trt_timing_cache_enable': 'True', 'trt_timing_cache_path': folder,
            'trt_fp16_enable': str(precision == 'fp16'),
            'trt_profile_min_shapes': dims(min_shape), 'trt_profile_opt_shapes': dims(opt_shape),
            'trt_profile_max_shapes': dims(max_shape)}


def classifier_provider_options(model_path: str, max_batch: int, cache_dir: str | None, precision: str) -> dict:
    """{TensorrtExecutionProvider: options} for a classifier: its batch profile 1..``max_batch`` (batches
    beyond run in chunks), the engine and timing caches in ``cache_dir`` (None = the default), ``precision``.
    Without these the provider rebuilt the engine at every start and again for every larger batch."""
    try:
        spec = read_onnx_spec(model_path)
    except (FileNotFoundError, ValueError) as exc:
        raise BackendError(str(exc)) from exc
    chw = (spec.channels, spec.height, spec.width)
    return {TENSORRT_EP: tensorrt_provider_options(spec.input_name, (1, *chw), (min(4, max_batch), *chw),
                                                   (max_batch, *chw), cache_dir, precision)}


def open_session(model_path: str, choice: str, threads: int, provider_options: dict | None = None):
    """An ONNX Runtime InferenceSession on the providers of ``choice`` ('cpu' | 'cuda' | 'tensorrt-ep') with
    fer_ros's settings: full graph optimisation, sequential execution, ``threads`` intra-op threads that sleep
    instead of spinning between calls.

    Args:
        provider_options: {provider name: {option: value}} for those that take options.
    Raises:
        ValueError: unknown choice. BackendError: ONNX Runtime cannot load the file, or the choice's first
            provider is missing from this build or does not start (the message names the file and the cause).
    """
    import onnxruntime as ort

    if choice not in ONNXRUNTIME_BACKENDS:
        raise ValueError(f'ONNX Runtime backend must be one of {ONNXRUNTIME_BACKENDS}, got {choice!r}')
    providers = list(PROVIDERS[choice])
    if providers[0] not in ort.get_available_providers():
        raise BackendError(f"{model_path}: backend {choice!r}: onnxruntime {ort.__version__} has no {providers[0]} "
                           f'({ORT_GPU_SOURCE})')
    providers = [p for p in providers if p in ort.get_available_providers()]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # spinning threads burn a core between calls; the detector and the node need it
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    options.log_severity_level = 3  # ORT's own warnings (e.g. a missing CUDA library) are summarised below
    provider_options = provider_options or {}
    try:
        session = ort.InferenceSession(model_path, sess_options=options, providers=providers,
                                       provider_options=[provider_options.get(p, {}) for p in providers])
    except Exception as exc:  # ORT raises its own exception types
        raise BackendError(f'{model_path}: ONNX Runtime cannot load it ({exc})') from exc
    if providers[0] not in session.get_providers():
        # e.g. onnxruntime-gpu whose CUDA / TensorRT libraries are missing: ORT would silently use the CPU
        raise BackendError(f'{model_path}: backend {choice!r}: {providers[0]} did not start (ONNX Runtime fell back '
                           f"to {', '.join(session.get_providers())}); are its CUDA / TensorRT libraries installed?")
    return session


def device_of(providers) -> str:
    return 'CPU' if providers[0] == CPU_EP else f"GPU ({providers[0].replace('ExecutionProvider', '')})"


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX classifier exported with fer_ros metadata.

    Args:
        model_path: the .onnx file.
        backend: 'cpu' | 'cuda' | 'tensorrt-ep' (see the module docstring).
        intra_op_threads: CPU threads for one inference; None = 1. The default model needs ~10 MFLOP
            per face, too little to gain from a second thread on a small machine, and ONNX Runtime's
            spinning worker threads would steal the CPU the face detector and ROS need.
        precision, engine_cache_dir, max_batch: the TensorRT provider's ('tensorrt-ep'): FP16 or not, the
            cache folder ('' = the default), the profile's largest batch (larger batches run in chunks).
    Raises:
        BackendError: missing file, not loadable, the provider missing or not starting, no/invalid fer_ros
            metadata, or an input shape that contradicts the metadata.
    """

    name = 'onnxruntime'

    def __init__(self, model_path: str, backend: str = 'cpu', intra_op_threads: int | None = None, *,
                 precision: str = 'fp16', engine_cache_dir: str = '', max_batch: int = 32) -> None:
        import onnxruntime as ort

        if intra_op_threads is not None and intra_op_threads < 1:
            raise ValueError(f'intra_op_threads must be >= 1, got {intra_op_threads}')
        if not os.path.isfile(model_path):
            raise BackendError(f'ONNX model not found: {model_path}')
        self.model_path = model_path
        self.choice = backend
        provider_options = None
        if backend == 'tensorrt-ep':
            provider_options = classifier_provider_options(model_path, max_batch, engine_cache_dir or None, precision)
        self._session = open_session(model_path, backend, intra_op_threads or 1, provider_options)
        self._max_batch = max_batch if backend == 'tensorrt-ep' else None
        self.providers = tuple(self._session.get_providers())
        try:
            self.spec = ModelSpec.from_metadata(self._session.get_modelmeta().custom_metadata_map, model_path)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        inputs = self._session.get_inputs()
        if [i.name for i in inputs] != [self.spec.input_name]:
            raise BackendError(f'{model_path}: inputs {[i.name for i in inputs]} != metadata input_name '
                               f'{self.spec.input_name!r}')
        shape = inputs[0].shape
        want = [self.spec.channels, self.spec.height, self.spec.width]
        if len(shape) != 4 or any(isinstance(s, int) and s != w for s, w in zip(shape[1:], want)):
            raise BackendError(f'{model_path}: input shape {shape} contradicts its metadata '
                               f'[N, {want[0]}, {want[1]}, {want[2]}]')
        # a model exported with a fixed batch size is run in chunks of that size
        self._fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self._output_names = [self.spec.output_name]
        if self.spec.output_name not in [o.name for o in self._session.get_outputs()]:
            raise BackendError(f'{model_path}: no output named {self.spec.output_name!r} (metadata output_name)')
        self.device = device_of(self.providers)
        log.info('onnxruntime %s: %s on %s', ort.__version__, os.path.basename(model_path), ', '.join(self.providers))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.spec, type(self).__name__)
        if self._fixed_batch is None and self._max_batch is not None:     # inside the TensorRT profile
            out = np.concatenate([self._run(batch[i:i + self._max_batch])
                                  for i in range(0, len(batch), self._max_batch)])
        elif self._fixed_batch is None:
            out = self._run(batch)
        else:
            fixed = self._fixed_batch
            out = np.concatenate([self._run_padded(batch[i:i + fixed], fixed) for i in range(0, len(batch), fixed)])
        if out.ndim != 2 or out.shape != (len(batch), self.spec.num_classes):
            raise BackendError(f'{self.model_path}: output shape {out.shape}, '
                               f'expected ({len(batch)}, {self.spec.num_classes})')
        return softmax(out) if self.spec.output == 'logits' else out.astype(np.float32, copy=False)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(self._output_names, {self.spec.input_name: batch})[0]

    def _run_padded(self, chunk: np.ndarray, fixed: int) -> np.ndarray:
        """A model with a fixed batch of ``fixed`` rows: ``chunk`` (at most that many) zero-padded to it."""
        n = len(chunk)
        if n < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), np.float32)])
        return self._run(chunk)[:n]


class OnnxRuntimeRunner(TensorRunner):
    """A TensorRunner on ONNX Runtime (the face detector), on the providers of ``backend``.

    Args:
        model_path: the .onnx file. backend: 'cpu' | 'cuda' | 'tensorrt-ep'. intra_op_threads: CPU threads per
        call (>= 1). provider_options: {provider: {option: value}}, e.g. from ``tensorrt_provider_options``.
    Raises:
        BackendError: missing or unloadable file, the provider missing or not starting.
    """

    name = 'onnxruntime'

    def __init__(self, model_path: str, backend: str = 'cpu', intra_op_threads: int = 1,
                 provider_options: dict | None = None) -> None:
        if intra_op_threads < 1:
            raise ValueError(f'intra_op_threads must be >= 1, got {intra_op_threads}')
        if not os.path.isfile(model_path):
            raise BackendError(f'ONNX model not found: {model_path}')
        self.model_path = model_path
        self.choice = backend
        self._session = open_session(model_path, backend, intra_op_threads, provider_options)
        self.providers = tuple(self._session.get_providers())
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self.device = device_of(self.providers)

    def run(self, feeds, output_names):
        return dict(zip(output_names, self._session.run(output_names, feeds)))
