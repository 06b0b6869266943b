"""CUDA device buffers and a stream for the TensorRT engine builder and runtime (cuda-python only).

cuda-python is the declared dependency (requirements-trt.txt; JetPack ships it too): one buffer path,
the one NVIDIA's TensorRT samples use. The runtime API works on the device's primary context from
any thread, so no context juggling is needed.

Versions: cuda-python 12.6 to 13.x (CUDA_PYTHON_RANGE; test/test_api_contract.py checks the code against
12.6.2.post1, the newest 12.x and the newest 13.x). ``cuda.bindings.runtime`` (12.6.1+; ``cuda.cudart``
before, removed in 13); the stream handle through ``cuda.bindings.utils.get_cuda_native_handle`` where it
exists (12.9.1+: ``int(stream)`` is deprecated there), ``int()`` before.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.util
from collections.abc import Iterator

import numpy as np

from fer_ros.backends.base import BackendError

CUDA_PYTHON_RANGE = ((12, 6), (14, 0))        # [lowest, highest) cuda-python versions fer_ros runs with
CUDA_HINT = ("TensorRT needs cuda-python for device buffers ({cause}): "
             "pip install -r requirements-trt.txt (a Jetson: requirements-jetson-trt.txt); cuda-python 12.x "
             "for TensorRT built for CUDA 12, 13.x for CUDA 13")


def native_handle(cuda_object) -> int:
    """The address behind a cuda-python object (a stream): ``get_cuda_native_handle`` where cuda-python has it
    (``int(obj)`` is deprecated there), else ``int``."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(cuda_object)
    return int(get_cuda_native_handle(cuda_object))


class CudaStream:
    """Device memory and one stream on CUDA device 0 through cuda-python's runtime API
    (``cuda.bindings.runtime``, or ``cuda.cudart`` in cuda-python < 12.6), as NVIDIA's TensorRT Python
    samples do. Host arrays are ordinary numpy arrays; pointers are ints.
    """

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
        """The stream's address (what TensorRT's ``execute_async_v3`` takes)."""
        return native_handle(self._stream)

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

    def host_alloc(self, nbytes: int) -> tuple[int, np.ndarray]:
        """Page-locked host memory (cudaMallocHost): (pointer for ``free_host``, uint8[nbytes] numpy view).
        Copies from / to it are truly asynchronous and faster than from pageable numpy arrays."""
        ptr = int(self._call(self._rt.cudaMallocHost(int(nbytes)), 'cudaMallocHost'))
        return ptr, np.ctypeslib.as_array((ctypes.c_uint8 * int(nbytes)).from_address(ptr))

    def free_host(self, ptr: int) -> None:
        self._call(self._rt.cudaFreeHost(ptr), 'cudaFreeHost')

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


def cuda_python_version() -> tuple[int, ...]:
    """The installed cuda-python / cuda-bindings version as numbers, () when unknown."""
    from importlib import metadata
    for dist in ('cuda-bindings', 'cuda-python'):
        try:
            text = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return tuple(int(part) for part in text.split('.')[:3] if part.isdigit())
    return ()


def open_cuda() -> CudaStream:
    """A CUDA stream helper on device 0.

    Raises:
        BackendError: cuda-python is not installed, or CUDA fails to start (no GPU / driver).
    """
    if importlib.util.find_spec('cuda') is None:
        raise BackendError(CUDA_HINT.format(cause='cuda-python is not installed'))
    version = cuda_python_version()
    low, high = CUDA_PYTHON_RANGE
    if version and not low <= version[:2] < high:
        raise BackendError(CUDA_HINT.format(cause=f"cuda-python {'.'.join(map(str, version))} is outside "
                                                  f'{low[0]}.{low[1]}..<{high[0]}.{high[1]}'))
    try:
        return CudaStream()
    except BackendError:
        raise
    except Exception as exc:  # no driver, no device, broken install
        raise BackendError(f'CUDA does not start through cuda-python: {type(exc).__name__}: {exc}') from exc
