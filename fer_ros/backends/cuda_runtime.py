"""CUDA device buffers and a stream for the TensorRT engine builder and runtime (cuda-python only).

cuda-python is the declared dependency (requirements-trt.txt; JetPack ships it too): one buffer path,
the one NVIDIA's TensorRT samples use. The runtime API works on the device's primary context from
any thread, so no context juggling is needed.
"""
from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

import numpy as np

from fer_ros.backends.base import BackendError

CUDA_HINT = ("TensorRT needs cuda-python for device buffers ({cause}): "
             "pip install 'cuda-python>=12,<13' (match the CUDA major version of your TensorRT)")


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


def open_cuda() -> CudaStream:
    """A CUDA stream helper on device 0.

    Raises:
        BackendError: cuda-python is not installed, or CUDA fails to start (no GPU / driver).
    """
    if importlib.util.find_spec('cuda') is None:
        raise BackendError(CUDA_HINT.format(cause='cuda-python is not installed'))
    try:
        return CudaStream()
    except BackendError:
        raise
    except Exception as exc:  # no driver, no device, broken install
        raise BackendError(f'CUDA does not start through cuda-python: {type(exc).__name__}: {exc}') from exc
