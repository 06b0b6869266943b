"""Native TensorRT backends: the classifier (``TensorRTBackend``) and the face detector (``TensorRTRunner``),
both a cached fer_ros engine file run by ``tensorrt_runtime.TensorRTEngine`` on CUDA device 0.

An .onnx model is first turned into its cached engine by ``tensorrt_engine.ensure_engine`` (built only
when missing: see that module); the classifier also loads a prebuilt fer_ros .engine/.plan/.trt file
(fer-build-engine --out), whose header carries the model's metadata.

Loading checks (classifier)
    The engine's I/O tensors must be exactly one input named ``spec.input_name`` of shape (N|-1, C, H, W)
    and one output named ``spec.output_name`` of shape (N|-1, K), float32 or float16, as the ModelSpec in
    the engine's header says; anything else is a BackendError naming the engine and both sides.
"""
from __future__ import annotations

import logging
import os
import threading

import numpy as np

from fer_ros.backends.base import Backend, BackendError, TensorRunner, check_batch, softmax
from fer_ros.backends.cuda_runtime import CudaStream, open_cuda
from fer_ros.backends.engine_file import split_engine_file
from fer_ros.backends.selection import import_tensorrt
from fer_ros.backends.tensorrt_engine import (
    DEFAULT_MAX_BATCH,
    check_build_args,
    classifier_profiles,
    detector_profiles,
    ensure_engine,
    read_model_spec,
)
from fer_ros.backends.tensorrt_runtime import TensorRTEngine
from fer_ros.core.backend_options import ENGINE_SUFFIXES
from fer_ros.core.spec import ModelSpec

log = logging.getLogger(__name__)


class _EngineHolder:
    """TensorRT, a CUDA stream and one loaded engine file; closes them together (idempotent, thread-safe)."""

    _close_lock: threading.Lock
    _cuda: CudaStream | None
    _engine: TensorRTEngine | None
    device: str
    precision: str

    def _open(self, engine_path: str) -> tuple[dict, TensorRTEngine]:
        trt = import_tensorrt()
        header, plan = split_engine_file(engine_path)
        fields = header.get('key_fields', {})
        built_with = fields.get('tensorrt_version')
        if built_with and built_with != trt.__version__:
            raise BackendError(f'{engine_path}: built with TensorRT {built_with}, this is {trt.__version__}; '
                               'rebuild it with fer-build-engine')
        cuda = self._cuda
        if cuda is None:
            raise BackendError(f'{engine_path}: the backend is closed')
        gpu = cuda.device_name()
        if fields.get('gpu_name') and fields['gpu_name'] != gpu:
            log.warning('%s was built on %s, running on %s; rebuild it for this GPU if it fails or is slow',
                        engine_path, fields['gpu_name'], gpu)
        self.device = f'CUDA:0 {gpu}'
        self.precision = fields.get('precision', 'unknown')
        return header, TensorRTEngine(plan, engine_path, trt, cuda)

    def close(self) -> None:
        """Free the engine, its buffers and the stream (idempotent; waits for a running inference)."""
        with self._close_lock:
            engine, self._engine = getattr(self, '_engine', None), None
            cuda, self._cuda = getattr(self, '_cuda', None), None
        if engine is not None:
            engine.close()
        if cuda is not None:
            try:
                cuda.close()
            except Exception as exc:  # closing must not raise (error paths, shutdown)
                log.warning('releasing the CUDA stream failed: %s', exc)


class TensorRTBackend(_EngineHolder, Backend):
    """Runs a classifier as a TensorRT engine on CUDA device 0.

    Args:
        model_path: an .onnx file (its cached engine is loaded, or built once: see tensorrt_engine) or a
            prebuilt fer_ros engine file (fer-build-engine --out).
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
        self._close_lock = threading.Lock()
        import_tensorrt()                                  # the clearest message first when TensorRT is absent
        self._cuda = open_cuda()
        self._engine = None
        try:
            if suffix == '.onnx':
                spec = read_model_spec(model_path)
                profiles = classifier_profiles(model_path, spec, max_batch)
                self.engine_path, _ = ensure_engine(model_path, precision=precision, profiles=profiles,
                                                    cache_dir=engine_cache_dir, calib_dir=int8_calib_dir,
                                                    cuda=self._cuda, start_up=True)
            else:
                self.engine_path = model_path
            header, self._engine = self._open(self.engine_path)
            try:
                self.spec = ModelSpec.from_metadata(header['metadata'], self.engine_path)
            except ValueError as exc:
                raise BackendError(str(exc)) from exc
            self._check_tensors()
        except BaseException:
            self.close()
            raise
        log.info('TensorRT: %s (%s, max batch %d) on %s', os.path.basename(self.engine_path), self.precision,
                 self.max_batch, self.device)

    def _check_tensors(self) -> None:
        """The engine's I/O tensors must be what the ModelSpec says (names, ranks, C/H/W, K, dtypes)."""
        engine, spec, where = self._engine, self.spec, self.engine_path
        if engine is None:
            raise BackendError(f'{where}: the backend is closed')
        inputs, outputs = [t.name for t in engine.inputs], [t.name for t in engine.outputs]
        if inputs != [spec.input_name] or outputs != [spec.output_name]:
            raise BackendError(f'{where}: engine tensors inputs={inputs} outputs={outputs}; the model spec expects '
                               f'inputs=[{spec.input_name!r}] outputs=[{spec.output_name!r}]')
        entry, result = engine.tensors[spec.input_name], engine.tensors[spec.output_name]
        chw = (spec.channels, spec.height, spec.width)
        if len(entry.shape) != 4 or entry.shape[1:] != chw:
            raise BackendError(f'{where}: input {spec.input_name!r} has shape {entry.shape}; the model spec expects '
                               f'(N, {chw[0]}, {chw[1]}, {chw[2]})')
        if len(result.shape) != 2 or result.shape[1] != spec.num_classes:
            raise BackendError(f'{where}: output {spec.output_name!r} has shape {result.shape}; the model spec expects '
                               f'(N, {spec.num_classes}) for labels {list(spec.labels)}')
        for info in (entry, result):
            if info.dtype not in (np.float32, np.float16):
                raise BackendError(f'{where}: tensor {info.name!r} is {info.dtype}; float32 or float16 expected')
        self._fixed_batch = None if entry.shape[0] == -1 else int(entry.shape[0])
        self.max_batch = int(entry.max_shape[0])

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32[N, C, H, W] -> float32[N, K] probabilities (chunks of ``max_batch`` rows)."""
        batch = check_batch(batch, self.spec, type(self).__name__)
        engine = self._engine
        if engine is None:
            raise BackendError(f'{self.model_path}: backend is closed')
        step = self.max_batch
        out = np.concatenate([self._run(engine, batch[i:i + step]) for i in range(0, len(batch), step)])
        return softmax(out) if self.spec.output == 'logits' else out.astype(np.float32, copy=False)

    def _run(self, engine: TensorRTEngine, chunk: np.ndarray) -> np.ndarray:
        n = len(chunk)
        if self._fixed_batch is not None and n < self._fixed_batch:
            chunk = np.concatenate([chunk, np.zeros((self._fixed_batch - n, *chunk.shape[1:]), chunk.dtype)])
        out = engine.run({self.spec.input_name: chunk})[self.spec.output_name]
        return out[:n].astype(np.float32)


class TensorRTRunner(_EngineHolder, TensorRunner):
    """The face detector (or any ONNX model with named tensors) as a native TensorRT engine.

    Args:
        model_path: the detector's .onnx file (its metadata is carried into the engine file).
        input_name: its image input; side_limit: the longest input side the engine takes (a multiple of 32:
            ``DetectorConfig.input_side_limit``); precision: 'fp32' | 'fp16'; engine_cache_dir: as the classifier.
    Attributes:
        max_input_side: ``side_limit`` (the detector downscales larger inputs to it).
    Raises:
        BackendError: TensorRT / CUDA missing, a failed build, an engine that does not load.
    """

    name = 'tensorrt'

    def __init__(self, model_path: str, *, input_name: str, side_limit: int, precision: str = 'fp16',
                 engine_cache_dir: str | None = None) -> None:
        if precision not in ('fp32', 'fp16'):
            raise ValueError(f"the detector's TensorRT precision is 'fp32' or 'fp16', got {precision!r}")
        self.model_path = model_path
        self._close_lock = threading.Lock()
        import_tensorrt()
        self._cuda = open_cuda()
        self._engine = None
        try:
            profiles = detector_profiles(input_name, side_limit)
            self.engine_path, _ = ensure_engine(model_path, precision=precision, profiles=profiles,
                                                cache_dir=engine_cache_dir, cuda=self._cuda, start_up=True)
            header, self._engine = self._open(self.engine_path)
            self.metadata = dict(header['metadata'])
            self.max_input_side = int(profiles[input_name][2][-1])
        except BaseException:
            self.close()
            raise

    def run(self, feeds, output_names):
        engine = self._engine
        if engine is None:
            raise BackendError(f'{self.model_path}: runner is closed')
        out = engine.run(feeds)
        return {name: out[name].astype(np.float32, copy=False) for name in output_names}
