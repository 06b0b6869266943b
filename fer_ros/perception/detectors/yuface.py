"""Detector kind 'yuface': the libfacedetection CNN through the `yuface` wheel's compiled library."""
from __future__ import annotations

import ctypes
import glob
import logging
import os

import numpy as np

from fer_ros.perception.detectors.base import DetectorConfig, FaceDetector

log = logging.getLogger(__name__)


class _OpenMP:
    """Sets libgomp's thread count for the calling thread right before yuface runs.

    yuface's CNN uses OpenMP. OMP_NUM_THREADS would have to be set before the library loads and
    applies to everything; omp_set_num_threads is per calling thread (the node detects in a worker
    thread), so it is applied on every call (a microsecond).
    """

    def __init__(self, module_dir: str) -> None:
        self._set = None
        libs = glob.glob(os.path.join(os.path.dirname(module_dir), 'yuface.libs', 'libgomp*.so*'))
        for path in libs + ['libgomp.so.1']:
            try:
                self._set = ctypes.CDLL(path).omp_set_num_threads
                break
            except (OSError, AttributeError):
                continue
        if self._set is None:
            log.debug('libgomp not found next to yuface; its thread count is left to OMP_NUM_THREADS')

    def __call__(self, threads: int) -> None:
        if self._set is not None:
            self._set(int(threads))


class _LibFaceDetection:
    """Direct ctypes call of libfacedetection's ``facedetect_cnn`` with one reusable result buffer.

    Why not ``yuface.c_detect``: the wheel's binding allocates a fresh 0x9000-byte result buffer on
    every call and never frees it (measured here: +35 KB of resident memory per call, +620 MB in a
    10-minute 30 Hz soak of the node). The library itself takes a caller-owned buffer, so we own one.
    Not thread-safe (one buffer): each detector instance is used from one thread.
    """

    BUFFER_BYTES = 0x9000      # the size libfacedetection requires for its result buffer
    SYMBOL = '_Z14facedetect_cnnPhS_iii'   # int* facedetect_cnn(unsigned char*, unsigned char*, int, int, int)

    def __init__(self, module_dir: str) -> None:
        lib = ctypes.CDLL(os.path.join(module_dir, 'libfacedetection.so'))
        self._fn = getattr(lib, self.SYMBOL)
        self._fn.restype = ctypes.POINTER(ctypes.c_int)
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._buffer = np.zeros(self.BUFFER_BYTES, np.uint8)

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        """uint8[H, W, 3] BGR -> int16[N, 16] rows (score 0..100, x, y, w, h, 5 landmarks, reserved)."""
        bgr = np.ascontiguousarray(bgr)
        result = self._fn(self._buffer.ctypes.data, bgr.ctypes.data, bgr.shape[1], bgr.shape[0], bgr.strides[0])
        count = result[0] if result else 0
        # the library writes the face count (int32) at the buffer's start, then 16 int16 per face
        return np.frombuffer(self._buffer, dtype=np.int16, count=16 * count, offset=4).reshape(count, 16).copy()


class YuFaceDetector(FaceDetector):
    """libfacedetection CNN via the `yuface` wheel."""

    name = 'yuface'

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        # libgomp reads this when yuface loads it: idle worker threads sleep instead of spinning
        # (spinning made 2-thread detection 5x slower on a busy 2-core machine); no effect at 1 thread.
        os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
        try:
            import yuface
            from yuface import c_detect
        except ImportError as exc:
            raise RuntimeError(f'detector yuface: cannot import yuface ({exc}); pip install yuface, '
                               "or use detector kind 'haar'") from exc
        module_dir = os.path.dirname(yuface.__file__)
        try:
            self._c_detect = _LibFaceDetection(module_dir)
        except (OSError, AttributeError) as exc:  # another yuface build: its binding leaks ~35 KB per call
            log.warning('yuface: calling libfacedetection directly failed (%s); using yuface.c_detect, '
                        'which leaks memory on every call', exc)
            self._c_detect = c_detect  # the raw call: the wrapper's warning and threshold are done here
        self._omp = _OpenMP(module_dir)

    def _detect(self, small_bgr, min_size, threads):
        self._omp(threads)
        # rows: score 0..100, x, y, w, h, 5 landmarks (x, y), one trailing field
        rows = np.asarray(self._c_detect(small_bgr)).reshape(-1, 16).astype(np.float32)
        if rows.shape[0] == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), None
        return rows[:, 1:5], rows[:, 0] / 100.0, rows[:, 5:15]
