"""One TensorRT engine on CUDA device 0, run with named tensors (like the inference class of NVIDIA's samples).

Shared by the classifier (``tensorrt_backend.TensorRTBackend``) and the face detector
(``tensorrt_backend.TensorRTRunner``): the TensorRT 10/11 named-tensor API (``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``), device buffers sized once for the largest shapes of the
engine's optimisation profile, page-locked (pinned) host buffers allocated once beside them (NVIDIA's
samples do the same: an asynchronous copy from pageable memory is staged and synchronous), one execution
context, and one lock around every use of them, ``close`` included (the node may close while a worker
thread infers).

Errors are BackendError naming the engine: a Runtime TensorRT cannot create (its bindings raise TypeError
then), an engine it cannot deserialize, a tensor type numpy has no dtype for (bf16, fp8, int4: TensorRT's
``nptype`` raises TypeError), an input shape outside the profile.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from fer_ros.backends.base import BackendError

log = logging.getLogger(__name__)


def tensor_dtype(trt, trt_type, where: str) -> np.dtype:
    """numpy dtype of a TensorRT DataType. Raises BackendError for types numpy lacks (bf16, fp8, fp4, int4)."""
    try:
        return np.dtype(trt.nptype(trt_type))
    except TypeError as exc:
        raise BackendError(f'{where}: tensor type {trt_type} has no numpy equivalent ({exc}); export the model '
                           'with float32 or float16 inputs and outputs') from exc


def create_runtime(trt, logger, where: str):
    """``trt.Runtime(logger)``; the bindings raise TypeError when libnvinfer returns no runtime (no CUDA)."""
    try:
        runtime = trt.Runtime(logger)
    except TypeError as exc:
        raise BackendError(f'{where}: TensorRT {trt.__version__} cannot create a Runtime ({exc}); is a CUDA '
                           'device visible and the driver new enough?') from exc
    return runtime


@dataclass(frozen=True)
class TensorInfo:
    """One I/O tensor: shape with -1 for dynamic axes, the largest shape this engine takes or returns,
    its numpy dtype and (inputs with dynamic axes) the profile's (min, max) shapes."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    max_shape: tuple[int, ...]
    dtype: np.dtype
    profile: tuple[tuple[int, ...], tuple[int, ...]] | None = None


class TensorRTEngine:
    """A deserialized TensorRT plan with its buffers and execution context on CUDA device 0.

    Args:
        plan: the serialized engine (``engine_file.split_engine_file``).
        source: the engine file (for messages).
        trt: the ``tensorrt`` module (``selection.import_tensorrt``).
        cuda: a ``cuda_runtime.CudaStream``; this engine uses it but does not close it.
    Raises:
        BackendError: see the module docstring.
    """

    def __init__(self, plan: bytes, source: str, trt, cuda) -> None:
        self.source = source
        self._trt, self._cuda = trt, cuda
        self._lock = threading.Lock()
        self._device: dict[str, int] = {}
        self._host: dict[str, np.ndarray] = {}
        self._pinned: list[int] = []
        self._closed = False
        self._logger = trt.Logger(trt.Logger.WARNING)
        try:
            self._runtime = create_runtime(trt, self._logger, source)
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            if self._engine is None:
                raise BackendError(f'{source}: TensorRT {trt.__version__} cannot deserialize it (built by another '
                                   'TensorRT version or for another GPU?); rebuild it with fer-build-engine')
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise BackendError(f'{source}: cannot create an execution context (out of GPU memory?)')
            self.tensors = self._read_tensors()
            self._allocate()
        except BaseException:
            self.close()
            raise

    def _read_tensors(self) -> dict[str, TensorInfo]:
        trt, engine, context = self._trt, self._engine, self._context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        infos: dict[str, TensorInfo] = {}
        for name in names:
            if engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
                continue
            shape = tuple(engine.get_tensor_shape(name))
            profile = None
            if -1 in shape:
                low, _, high = (tuple(s) for s in engine.get_tensor_profile_shape(name, 0))
                profile = (low, high)
                if not context.set_input_shape(name, high):
                    raise BackendError(f'{self.source}: set_input_shape({name!r}, {high}) rejected the profile max')
            infos[name] = TensorInfo(name, True, shape, profile[1] if profile else shape,
                                     tensor_dtype(trt, engine.get_tensor_dtype(name), f'{self.source}: {name!r}'),
                                     profile)
        for name in names:                     # with every input at its largest shape: the largest outputs
            if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
                continue
            shape = tuple(engine.get_tensor_shape(name))
            largest = tuple(context.get_tensor_shape(name)) if -1 in shape else shape
            if any(d < 0 for d in largest):
                raise BackendError(f'{self.source}: output {name!r} has a data-dependent shape {largest}; '
                                   'fer_ros runs engines whose output shapes follow from the input shapes')
            infos[name] = TensorInfo(name, False, shape, largest,
                                     tensor_dtype(trt, engine.get_tensor_dtype(name), f'{self.source}: {name!r}'))
        return infos

    def _allocate(self) -> None:
        for info in self.tensors.values():
            nbytes = max(1, int(np.prod(info.max_shape)) * info.dtype.itemsize)
            self._device[info.name] = self._cuda.malloc(nbytes)
            ptr, host = self._cuda.host_alloc(nbytes)
            self._pinned.append(ptr)
            self._host[info.name] = host
            if not self._context.set_tensor_address(info.name, self._device[info.name]):
                raise BackendError(f'{self.source}: set_tensor_address({info.name!r}) failed')

    @property
    def inputs(self) -> list[TensorInfo]:
        return [t for t in self.tensors.values() if t.is_input]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [t for t in self.tensors.values() if not t.is_input]

    def check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        """Raise BackendError unless ``shape`` fits input ``name`` (its fixed axes, its profile range)."""
        info = self.tensors.get(name)
        if info is None or not info.is_input:
            raise BackendError(f'{self.source}: no input named {name!r}; inputs: {[t.name for t in self.inputs]}')
        low, high = info.profile or (info.shape, info.shape)
        if len(shape) != len(info.shape) or any(not lo <= s <= hi for s, lo, hi in zip(shape, low, high)):
            raise BackendError(f'{self.source}: input {name!r} of shape {tuple(shape)} is outside the engine\'s '
                               f'range {tuple(low)}..{tuple(high)}; rebuild the engine for larger inputs')

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One inference. feeds: {input name: array} (cast to the engine's dtype). Returns {output name: array
        of the engine's dtype}, fresh arrays the caller owns."""
        with self._lock:
            if self._closed:
                raise BackendError(f'{self.source}: the TensorRT engine is closed')
            for name, array in feeds.items():
                self.check_shape(name, array.shape)
                info = self.tensors[name]
                if info.profile is not None and not self._context.set_input_shape(name, tuple(array.shape)):
                    raise BackendError(f'{self.source}: set_input_shape({name!r}, {tuple(array.shape)}) rejected')
                host = self._host[name][:array.size * info.dtype.itemsize].view(info.dtype).reshape(array.shape)
                host[...] = array
                self._cuda.htod(self._device[name], host)
            if not self._context.execute_async_v3(self._cuda.handle):
                raise BackendError(f'{self.source}: execute_async_v3 failed (see the TensorRT messages)')
            shapes = {t.name: tuple(self._context.get_tensor_shape(t.name)) for t in self.outputs}
            views = {}
            for info in self.outputs:
                count = int(np.prod(shapes[info.name]))
                views[info.name] = self._host[info.name][:count * info.dtype.itemsize].view(info.dtype).reshape(
                    shapes[info.name])
                self._cuda.dtoh(views[info.name], self._device[info.name])
            self._cuda.synchronize()
            return {name: view.copy() for name, view in views.items()}

    def close(self) -> None:
        """Release the context, engine and buffers (idempotent; waits for a running inference)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._context = None       # TensorRT objects free their device memory first
                self._engine = None
                for ptr in self._device.values():
                    self._cuda.free(ptr)
                for ptr in self._pinned:
                    self._cuda.free_host(ptr)
            except Exception as exc:  # closing must not raise (called from error paths and shutdown)
                log.warning('%s: releasing CUDA resources failed: %s', self.source, exc)
            self._device.clear()
            self._pinned.clear()
            self._host.clear()
