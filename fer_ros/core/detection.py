"""Face detection behind one interface: yuface (default) or OpenCV Haar (fallback).

Bounded work: every detector runs on a copy downscaled so its longer side is at most
``DetectorConfig.max_side`` pixels, and maps boxes back to the full-resolution frame. The returned
boxes are (x, y, w, h) floats in source pixels, clipped to the image, sorted by score (highest first),
at most ``max_faces`` of them.

- ``yuface``: the libfacedetection CNN (BSD-3, numpy only, compiled in). Best recall available offline
  (frontal and turned faces, reliably from ~40 px at the detector's input scale); scores are its
  confidences 0..1; 5 landmarks. Its time grows with the input pixels (the main latency knob is
  ``max_side``; fer-bench measures time and recall by face size for several values).
- ``haar``: OpenCV's frontal-face Haar cascade (opencv-python < 5 ships it; else the system's
  /usr/share/opencv4/haarcascades). Frontal faces only, more false positives. A Haar cascade has no
  calibrated confidence: it reports 1.0 for every face its neighbour grouping (min_neighbors=5) keeps,
  so ``confidence_threshold`` only filters yuface; Haar faces are ordered by size instead.
"""
from __future__ import annotations

import ctypes
import glob
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np

from fer_ros.core.types import Detection

log = logging.getLogger(__name__)

DETECTOR_KINDS = ('yuface', 'haar')
_HAAR_FILE = 'haarcascade_frontalface_default.xml'
_SYSTEM_CASCADE_DIRS = ('/usr/share/opencv4/haarcascades', '/usr/share/opencv/haarcascades',
                        '/usr/local/share/opencv4/haarcascades')


@dataclass(frozen=True)
class DetectorConfig:
    """Face detector settings (validated on construction).

    kind: 'yuface' | 'haar'. max_side: the detector sees the frame downscaled to at most this many
    pixels on its longer side (64..4096; frames already smaller are not upscaled). min_face_size:
    faces smaller than this (pixels of the full-resolution frame, on the shorter box side) are dropped.
    confidence_threshold: minimum detector score, 0..1. max_faces: at most this many faces per frame
    (the highest-scoring), 1..256. num_threads: CPU threads for yuface's OpenMP (0 = one per core,
    at most 4; OpenCV's pool used by Haar is process-wide and left alone). Detection runs before
    inference, never beside it, so it may use every core.
    """

    kind: str = 'yuface'
    max_side: int = 640
    min_face_size: int = 24
    confidence_threshold: float = 0.6
    max_faces: int = 10
    num_threads: int = 0

    def __post_init__(self) -> None:
        if self.kind not in DETECTOR_KINDS:
            raise ValueError(f'DetectorConfig.kind must be one of {DETECTOR_KINDS}, got {self.kind!r}')
        if not 64 <= self.max_side <= 4096:
            raise ValueError(f'DetectorConfig.max_side must be in 64..4096, got {self.max_side}')
        if not 1 <= self.min_face_size <= 4096:
            raise ValueError(f'DetectorConfig.min_face_size must be in 1..4096, got {self.min_face_size}')
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError(f'DetectorConfig.confidence_threshold must be in 0..1, got {self.confidence_threshold}')
        if not 1 <= self.max_faces <= 256:
            raise ValueError(f'DetectorConfig.max_faces must be in 1..256, got {self.max_faces}')
        if not 0 <= self.num_threads <= 64:
            raise ValueError(f'DetectorConfig.num_threads must be in 0..64 (0 = auto), got {self.num_threads}')

    @property
    def threads(self) -> int:
        """The thread count in effect (``num_threads``, or one per core up to 4 when it is 0)."""
        return self.num_threads or max(1, min(4, os.cpu_count() or 1))


def check_bgr(image: np.ndarray, who: str) -> None:
    """Raise ValueError unless ``image`` is a non-empty uint8[H, W, 3] array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 \
            or image.shape[0] == 0 or image.shape[1] == 0:
        desc = f'{image.dtype}{list(image.shape)}' if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f'{who} expects a non-empty uint8[H, W, 3] BGR image, got {desc}')


class FaceDetector(ABC):
    """Finds faces in a BGR frame. Subclasses implement ``_detect`` on the downscaled copy."""

    name = 'base'

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        """Faces in ``bgr`` (uint8[H, W, 3], BGR).

        Returns:
            Detections with boxes (x, y, w, h) in full-resolution pixels clipped to the image, scores
            0..1, landmarks float32[5, 2] (full-resolution pixels) or None; highest score first.
        Raises:
            ValueError: ``bgr`` is not a non-empty uint8[H, W, 3] array.
        """
        check_bgr(bgr, f'{type(self).__name__}.detect')
        height, width = bgr.shape[:2]
        scale = min(1.0, self.config.max_side / max(height, width))
        small = bgr
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            # exact per-axis factors, so boxes map back without rounding drift
            sx, sy = width / size[0], height / size[1]
        else:
            sx = sy = 1.0
        boxes, scores, landmarks = self._detect(np.ascontiguousarray(small), self.config.min_face_size / max(sx, sy))
        if len(boxes) == 0:
            return []
        boxes = boxes.astype(np.float64) * (sx, sy, sx, sy)
        x0 = np.clip(boxes[:, 0], 0, width)
        y0 = np.clip(boxes[:, 1], 0, height)
        x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
        y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
        w, h = x1 - x0, y1 - y0
        keep = (np.minimum(w, h) >= self.config.min_face_size) & (scores >= self.config.confidence_threshold)
        # score first, then larger faces first (Haar scores tie)
        order = [i for i in np.lexsort((-(w * h), -scores)) if keep[i]][:self.config.max_faces]
        result = []
        for i in order:
            marks = None
            if landmarks is not None:
                marks = landmarks[i].astype(np.float32).reshape(5, 2) * np.array([sx, sy], np.float32)
            result.append(Detection(box=(float(x0[i]), float(y0[i]), float(w[i]), float(h[i])),
                                    score=float(scores[i]), landmarks=marks))
        return result

    @abstractmethod
    def _detect(self, small_bgr: np.ndarray, min_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Detect on the downscaled copy.

        Args:
            small_bgr: uint8[h, w, 3] C-contiguous BGR.
            min_size: the smallest face side worth finding, in ``small_bgr`` pixels.
        Returns:
            (boxes float[N, 4] x, y, w, h in small_bgr pixels, scores float[N] 0..1,
             landmarks float[N, 10] (x, y pairs) or None)
        """


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
        self._c_detect = c_detect  # the raw call: the wrapper's warning and threshold are done here
        self._omp = _OpenMP(os.path.dirname(yuface.__file__))

    def _detect(self, small_bgr, min_size):
        self._omp(self.config.threads)
        # rows: score 0..100, x, y, w, h, 5 landmarks (x, y), one trailing field
        rows = np.asarray(self._c_detect(small_bgr)).reshape(-1, 16).astype(np.float32)
        if rows.shape[0] == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), None
        return rows[:, 1:5], rows[:, 0] / 100.0, rows[:, 5:15]


def find_haar_cascade(name: str = _HAAR_FILE) -> str:
    """Path of an OpenCV Haar cascade: opencv-python's cv2.data, else the system's cascade folders.

    Raises:
        FileNotFoundError: no cascade found (opencv-python 5.x ships none; install opencv-python<5 or
            the system's opencv data package).
    """
    places = []
    data = getattr(cv2, 'data', None)
    if data is not None and getattr(data, 'haarcascades', None):
        places.append(data.haarcascades)
    places.extend(_SYSTEM_CASCADE_DIRS)
    for place in places:
        path = os.path.join(place, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f'Haar cascade {name} not found in {places}; install opencv-python-headless<5 '
                            '(5.x ships no cascades) or the system OpenCV data package')


class HaarDetector(FaceDetector):
    """OpenCV frontal-face Haar cascade on the gray downscaled frame."""

    name = 'haar'
    scale_factor = 1.1
    min_neighbors = 5

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        path = find_haar_cascade()
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f'detector haar: OpenCV could not load the cascade {path}')

    def _detect(self, small_bgr, min_size):
        gray = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2GRAY)
        side = max(1, int(min_size))
        faces = self._cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(side, side))
        boxes = np.asarray(faces, np.float32).reshape(-1, 4)
        return boxes, np.ones(len(boxes), np.float32), None


def create_detector(config: DetectorConfig | None = None) -> FaceDetector:
    """The detector named by ``config.kind`` ('yuface' or 'haar').

    Raises:
        RuntimeError / FileNotFoundError: the detector's library or cascade is missing (message says how to fix).
    """
    config = config or DetectorConfig()
    return YuFaceDetector(config) if config.kind == 'yuface' else HaarDetector(config)
