"""ONNX Runtime backend: the default on CPU; uses the TensorRT / CUDA execution providers when the
installed onnxruntime has them (onnxruntime-gpu), else the CPU provider.

Reads the ModelSpec from the session's own metadata (key ``fer_ros``), so the file alone defines
labels, input size, channels and normalisation. Needs only numpy + onnxruntime (never torch).
"""
from __future__ import annotations

import logging
import os

import numpy as np

from fer_ros.backends.base import Backend, BackendError, TensorRunner, check_batch, softmax
from fer_ros.core.spec import ModelSpec

log = logging.getLogger(__name__)

CPU = 'CPUExecutionProvider'
GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')


def choose_providers(providers, available: list[str]) -> list[str]:
    """The providers to request: ``providers`` filtered to ``available`` (one warning for the missing),
    or, when None, TensorRT and CUDA where present, then CPU."""
    if providers is None:
        return [p for p in GPU_PROVIDERS if p in available] + [CPU]
    missing = [p for p in providers if p not in available]
    wanted = [p for p in providers if p in available] or [CPU]
    if missing:
        log.warning('onnxruntime lacks %s; using %s', ', '.join(missing), ', '.join(wanted))
    return wanted


def read_onnx_metadata(path: str) -> dict[str, str]:
    """The custom metadata map of an ONNX file, read with ONNX Runtime (a run-time dependency; ``onnx`` is not).

    Raises:
        FileNotFoundError: no file at ``path``. ValueError: not a loadable ONNX model.
    """
    import onnxruntime as ort

    if not os.path.isfile(path):
        raise FileNotFoundError(f'model file not found: {path}')
    try:
        session = ort.InferenceSession(path, providers=[CPU])
    except Exception as exc:  # ORT raises its own exception types
        raise ValueError(f'{path}: not a loadable ONNX model ({exc})') from exc
    return dict(session.get_modelmeta().custom_metadata_map)


def read_onnx_spec(path: str) -> ModelSpec:
    """The ModelSpec in an ONNX file's metadata.

    Raises:
        FileNotFoundError: no file at ``path``. ValueError: not a loadable ONNX model, or no valid spec.
    """
    return ModelSpec.from_metadata(read_onnx_metadata(path), path)


def open_session(model_path: str, providers: list, threads: int, provider_options: dict | None = None):
    """An ONNX Runtime InferenceSession with fer_ros's settings: full graph optimisation, sequential
    execution, ``threads`` intra-op threads that sleep instead of spinning between calls.

    Args:
        providers: execution provider names in order of preference.
        provider_options: {provider name: {option: value}} for those that take options.
    Raises:
        BackendError: ONNX Runtime cannot load the file (the message names it).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # spinning threads burn a core between calls; the detector and the node need it
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    options.log_severity_level = 3  # ORT's own warnings (e.g. a missing CUDA library) are summarised by the caller
    provider_options = provider_options or {}
    try:
        session = ort.InferenceSession(model_path, sess_options=options, providers=list(providers),
                                       provider_options=[provider_options.get(p, {}) for p in providers])
    except Exception as exc:  # ORT raises its own exception types
        raise BackendError(f'{model_path}: ONNX Runtime cannot load it ({exc})') from exc
    if providers and providers[0] not in session.get_providers():
        # e.g. onnxruntime-gpu whose CUDA/cuDNN libraries are missing: ORT silently uses the CPU
        log.warning('%s: execution provider %s did not start; running on %s', model_path, providers[0],
                    ', '.join(session.get_providers()))
    return session


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX classifier exported with fer_ros metadata.

    Args:
        model_path: the .onnx file.
        providers: ONNX Runtime execution providers in order of preference; None = TensorRT, CUDA
            (those present in this onnxruntime build) then CPU. Requested providers this build lacks
            are dropped with one warning.
        intra_op_threads: CPU threads for one inference; None = 1. The default model needs ~10 MFLOP
            per face, too little to gain from a second thread on a small machine, and ONNX Runtime's
            spinning worker threads would steal the CPU the face detector and ROS need.
    Raises:
        BackendError: missing file, not loadable, no/invalid fer_ros metadata, or an input shape that
            contradicts the metadata.
    """

    name = 'onnxruntime'

    def __init__(self, model_path: str, providers: list[str] | tuple[str, ...] | None = None,
                 intra_op_threads: int | None = None) -> None:
        import onnxruntime as ort

        if intra_op_threads is not None and intra_op_threads < 1:
            raise ValueError(f'intra_op_threads must be >= 1, got {intra_op_threads}')
        if not os.path.isfile(model_path):
            raise BackendError(f'ONNX model not found: {model_path}')
        self.model_path = model_path
        wanted = choose_providers(providers, ort.get_available_providers())
        self._session = open_session(model_path, wanted, intra_op_threads or 1)
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
        self.device = 'GPU (' + self.providers[0] + ')' if self.providers[0] != CPU else 'CPU'
        log.info('onnxruntime %s: %s on %s', ort.__version__, os.path.basename(model_path), ', '.join(self.providers))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.spec, type(self).__name__)
        if self._fixed_batch is None:
            out = self._run(batch)
        else:
            out = np.concatenate([self._run_padded(batch[i:i + self._fixed_batch])
                                  for i in range(0, len(batch), self._fixed_batch)])
        if out.ndim != 2 or out.shape != (len(batch), self.spec.num_classes):
            raise BackendError(f'{self.model_path}: output shape {out.shape}, '
                               f'expected ({len(batch)}, {self.spec.num_classes})')
        return softmax(out) if self.spec.output == 'logits' else out.astype(np.float32, copy=False)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(self._output_names, {self.spec.input_name: batch})[0]

    def _run_padded(self, chunk: np.ndarray) -> np.ndarray:
        n = len(chunk)
        if n < self._fixed_batch:
            chunk = np.concatenate([chunk, np.zeros((self._fixed_batch - n, *chunk.shape[1:]), np.float32)])
        return self._run(chunk)[:n]


def tensorrt_provider_options(input_name: str, min_shape: tuple[int, ...], opt_shape: tuple[int, ...],
                              max_shape: tuple[int, ...], cache_dir: str, precision: str = 'fp16') -> dict:
    """ONNX Runtime TensorRT-EP options for a model with a dynamic input: one explicit optimisation
    profile (min/opt/max shapes of ``input_name``) and the engine cache in ``cache_dir`` (the EP keys
    its cached engines by model hash, TensorRT version, GPU and profile, and rebuilds when they change).
    precision: 'fp32' | 'fp16'."""
    if precision not in ('fp32', 'fp16'):
        raise ValueError(f"precision must be 'fp32' or 'fp16' for the TensorRT execution provider, got {precision!r}")

    def dims(shape):
        return f'{input_name}:' + 'x'.join(str(int(d)) for d in shape)

    return {'trt_engine_cache_enable': 'True', 'trt_engine_cache_path': cache_dir,
            'trt_timing_cache_enable': 'True', 'trt_fp16_enable': str(precision == 'fp16'),
            'trt_profile_min_shapes': dims(min_shape), 'trt_profile_opt_shapes': dims(opt_shape),
            'trt_profile_max_shapes': dims(max_shape)}


class OnnxRuntimeRunner(TensorRunner):
    """A TensorRunner on ONNX Runtime (CPU, or the CUDA / TensorRT execution providers when requested
    and present in the installed onnxruntime build, e.g. JetPack's onnxruntime-gpu).

    Args:
        model_path: the .onnx file. providers: as OnnxRuntimeBackend (None = TensorRT, CUDA where
        present, then CPU). intra_op_threads: CPU threads per call (>= 1). provider_options:
        {provider: {option: value}}, e.g. from ``tensorrt_provider_options``.
    Raises:
        BackendError: missing or unloadable file.
    """

    name = 'onnxruntime'

    def __init__(self, model_path: str, providers=None, intra_op_threads: int = 1,
                 provider_options: dict | None = None) -> None:
        import onnxruntime as ort

        if intra_op_threads < 1:
            raise ValueError(f'intra_op_threads must be >= 1, got {intra_op_threads}')
        if not os.path.isfile(model_path):
            raise BackendError(f'ONNX model not found: {model_path}')
        self.model_path = model_path
        wanted = choose_providers(providers, ort.get_available_providers())
        self._session = open_session(model_path, wanted, intra_op_threads, provider_options)
        self.providers = tuple(self._session.get_providers())
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self.device = 'GPU (' + self.providers[0] + ')' if self.providers[0] != CPU else 'CPU'
        if self.providers[0] == 'TensorrtExecutionProvider':
            self.name = 'tensorrt'

    def run(self, feeds, output_names):
        return dict(zip(output_names, self._session.run(output_names, feeds)))
