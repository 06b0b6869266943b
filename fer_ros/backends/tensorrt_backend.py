"""TensorRT runtime backend (like the inference class of NVIDIA's samples): a built engine on CUDA device 0.

An .onnx model is first turned into its cached engine by ``tensorrt_engine.ensure_engine`` (built only
when missing: see that module); a prebuilt .engine/.plan/.trt is loaded with its ``<engine>.json``
sidecar, which carries the ModelSpec. Device buffers come from ``cuda_runtime`` (cuda-python).

Loading checks
    At load the engine's I/O tensors must be exactly one input named ``spec.input_name`` of shape
    (N|-1, C, H, W) and one output named ``spec.output_name`` of shape (N|-1, K), float32 or float16,
    as the sidecar's ModelSpec says; anything else is a BackendError naming the engine and both sides.

Versions
    TensorRT 10 named-tensor API (``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``).
    No torch at run time.
"""
from __future__ import annotations

import logging
import os
import threading

import numpy as np

from fer_ros.backends.base import Backend, BackendError, check_batch, softmax
from fer_ros.backends.cuda_runtime import open_cuda
from fer_ros.backends.tensorrt_engine import (
    DEFAULT_MAX_BATCH,
    check_build_args,
    ensure_engine,
    import_tensorrt,
    read_sidecar,
)
from fer_ros.core.backend_options import ENGINE_SUFFIXES

log = logging.getLogger(__name__)


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
