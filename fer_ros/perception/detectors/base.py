"""Face detection behind one interface: the libfacedetection CNN as ONNX (default), the yuface binding
of the same CNN, or OpenCV Haar (fallback).

Bounded work: every detector runs on a copy downscaled so its longer side is at most
``DetectorConfig.max_side`` pixels, and maps boxes back to the full-resolution frame. The returned
boxes are (x, y, w, h) floats in source pixels, clipped to the image, sorted by score (highest first),
at most ``max_faces`` of them.

- ``yunet`` (default): the same libfacedetection CNN rebuilt as an ONNX graph by `make setup` from the
  pinned yuface wheel (fer_ros.perception.detectors.yunet), run by a fer_ros backend (ONNX Runtime on the CPU;
  its CUDA / TensorRT execution providers on a GPU). Same faces, boxes and landmarks as ``yuface``
  (test/test_cnn_detection.py), a fraction of its CPU time, and it runs where yuface has no wheel (aarch64).
- ``yuface``: the libfacedetection CNN (BSD-3, numpy only, compiled in). Best recall available offline
  (frontal and turned faces, reliably from ~40 px at the detector's input scale); scores are its
  confidences 0..1; 5 landmarks. Its time grows with the input pixels (the main latency knob is
  ``max_side``; fer-bench measures time and recall by face size for several values).
- ``haar``: OpenCV's frontal-face Haar cascade (opencv-python < 5 ships it; else the system's
  /usr/share/opencv4/haarcascades). Frontal faces only, more false positives. A Haar cascade has no
  calibrated confidence: it reports 1.0 for every face its neighbour grouping (min_neighbors=5) keeps,
  so ``confidence_threshold`` only filters yuface; Haar faces are ordered by size instead.

ROI-assisted detection (``detect(bgr, regions=[box, ...])``): instead of the whole frame, the detector
looks only at squares around given face boxes (the tracker's last boxes), each resized so the face is
about ``roi_face_px`` pixels. A few 128x128 crops cost a fraction of a 640x480 frame, and the face is
seen at a size the detector finds reliably whatever ``max_side`` is (small faces are enlarged).
Faces outside every region are not found: the caller (``fer_ros.pipeline.Pipeline``) scans the
full frame at least every ``full_scan_s`` seconds and whenever it has no tracks, on a thread of its own
in the node (fer_ros.perception.full_scan). Works for every detector
kind (the base class runs the detector's own routine on each crop).
"""
from __future__ import annotations

import logging
import math
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from fer_ros.core.backend_options import DETECTOR_BACKENDS
from fer_ros.core.types import Detection
from fer_ros.core.validate import check_fields, setting
from fer_ros.perception.resample import resample

log = logging.getLogger(__name__)

DETECTOR_KINDS = ('yunet', 'yuface', 'haar')
# ROI crops are enlarged at most this much (a tiny tracked box must not become a huge upsampled crop)
MAX_ROI_UPSCALE = 4.0
# Two ROI detections are one face when the smaller box lies at least this much inside the other
# (intersection / smaller area: a face cut by a neighbour's ROI border is a sub-box of the real one).
ROI_DUPLICATE_OVERLAP = 0.5


@dataclass(frozen=True)
class DetectorConfig:
    """Face detector settings (validated on construction).

    kind: 'yunet' | 'yuface' | 'haar'. model_path: the yunet ONNX file ('' = the default made by
    `make setup`, see fer_ros.util.paths.default_detector_model_path). backend: where yunet runs, the
    classifier's vocabulary (fer_ros.backends.selection): 'auto' | 'cpu' | 'cuda' | 'tensorrt' (a native
    engine) | 'tensorrt-ep' (ONNX Runtime's TensorRT provider); TensorRT engines take inputs up to
    ``input_side_limit`` (their optimisation profile). max_side: the detector sees the frame downscaled to
    at most this many pixels on its longer side (64..4096; frames already smaller are not upscaled). min_face_size:
    faces smaller than this (pixels of the full-resolution frame, on the shorter box side) are dropped.
    confidence_threshold: minimum detector score, 0..1. max_faces: at most this many faces per frame
    (the highest-scoring), 1..256. num_threads: CPU threads of a whole-frame scan (yunet's session,
    yuface's OpenMP; 0 = automatic: one for the node's background scan, which runs beside the ROI path
    and costs the least CPU on one thread; one per core, at most 4, for a scan on the frame's own thread;
    ROI crops always use one; OpenCV's pool used by Haar is process-wide and left alone).

    ROI-assisted detection (used by the Pipeline; ``detect(bgr, regions=...)``, scheduling in
    fer_ros.perception.full_scan):
    full_scan_s: the whole frame is scanned at least every this many seconds (and whenever nothing is
        tracked); in between only the squares around the tracked faces are searched. 0..60 (0 = every
        frame). Time, not frames: the bound on finding a new face holds whatever the frame rate.
    full_scan_share: the background scan may also start as soon as the previous one finished, as long
        as scanning takes at most this share of one core on average (0.01..1; 1 = back to back).
    idle_scan_s: the scene-change gate (fer_ros.perception.scene_change): while faces are tracked, all
        of them were found in the last frame and the view outside them has not changed since the last
        scan, the whole frame is scanned only every this many seconds (0..60; 0, or not longer than
        ``full_scan_s``, turns the gate off: every ``full_scan_s``; ``full_scan_s`` 0 scans every frame).
    roi_scale: side of the square searched around a tracked box, as a multiple of the box's longer
        side, 1.2..8 (2: the face may move half its size between frames and stay inside).
    roi_face_px: each region is resized so the tracked face is about this many pixels (16..512;
        enlarged at most 4x); the detector then sees a crop of ``roi_scale * roi_face_px`` pixels
        (default 2 * 64 = 128: yuface finds 64 px faces reliably, and boxes agree with the
        full-frame ones to IoU >= 0.74 on the sample frames; 80 costs ~50 % more time).
    """

    kind: str = setting('yunet', choices=DETECTOR_KINDS)
    model_path: str = ''
    backend: str = setting('auto', choices=DETECTOR_BACKENDS)
    max_side: int = setting(640, low=64, high=4096)
    min_face_size: int = setting(24, low=1, high=4096)
    confidence_threshold: float = setting(0.6, low=0.0, high=1.0)
    max_faces: int = setting(10, low=1, high=256)
    num_threads: int = setting(0, low=0, high=64)
    full_scan_s: float = setting(0.05, low=0.0, high=60.0)
    full_scan_share: float = setting(0.25, low=0.01, high=1.0)
    idle_scan_s: float = setting(0.5, low=0.0, high=60.0)
    roi_scale: float = setting(2.0, low=1.2, high=8.0)
    roi_face_px: int = setting(64, low=16, high=512)

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def threads(self) -> int:
        """The thread count in effect (``num_threads``, or one per core up to 4 when it is 0)."""
        return self.num_threads or max(1, min(4, os.cpu_count() or 1))

    @property
    def input_side_limit(self) -> int:
        """The longest side (pixels, a multiple of 32) the detector network can be given with these settings:
        a whole frame is at most ``max_side``, an ROI crop at most ``roi_scale * roi_face_px`` (+1 rounding),
        padded to 32. TensorRT engines are built for inputs up to this size."""
        longest = max(self.max_side, math.ceil(self.roi_scale * self.roi_face_px) + 1)
        return -(-longest // 32) * 32


def check_bgr(image: np.ndarray, who: str) -> None:
    """Raise ValueError unless ``image`` is a non-empty uint8[H, W, 3] array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 \
            or image.shape[0] == 0 or image.shape[1] == 0:
        desc = f'{image.dtype}{list(image.shape)}' if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f'{who} expects a non-empty uint8[H, W, 3] BGR image, got {desc}')


class FaceDetector(ABC):
    """Finds faces in a BGR frame. Subclasses implement ``_detect`` on a (downscaled) image; the base
    class does the scaling, the regions of interest, the mapping back and the filtering."""

    name = 'base'
    device = 'CPU'          # where the detector runs (a GPU runner's device for yunet)
    selected = ''           # why, when its backend was 'auto'
    # The longest input side the runtime accepts (a TensorRT engine's optimisation profile), None = any.
    # Larger inputs (detector_max_side raised at run time past the built profile, or ROI settings changed)
    # are downscaled to fit, with one warning: the detector keeps seeing rather than failing.
    input_limit: int | None = None

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self._warned_limit = False

    def detect(self, bgr: np.ndarray, regions=None) -> list[Detection]:
        """Faces in ``bgr`` (uint8[H, W, 3], BGR).

        Args:
            regions: None = the whole frame (downscaled to ``max_side``). Else face boxes (x, y, w, h)
                in frame pixels (e.g. the tracker's last boxes): only the squares around them are
                searched (see ``roi_windows``), and a face seen by several of them is reported once.
                An empty list finds nothing.
        Returns:
            Detections with boxes (x, y, w, h) in full-resolution pixels clipped to the image, scores
            0..1, landmarks float32[5, 2] (full-resolution pixels) or None; highest score first, at
            most ``max_faces``.
        Raises:
            ValueError: ``bgr`` is not a non-empty uint8[H, W, 3] array, or a region is not 4 numbers.
        """
        check_bgr(bgr, f'{type(self).__name__}.detect')
        height, width = bgr.shape[:2]
        if regions is None:
            scale = min(1.0, self.config.max_side / max(height, width))
            found = [self._detect_window(bgr, (0, 0, width, height), scale, self.config.threads)]
        else:
            # One thread per crop: a ~128 px crop is too little work to share; measured here, 2 OpenMP
            # threads made ROI detection 10-30 % slower (more on a busy machine) and took both cores.
            found = [self._detect_window(bgr, window, scale, 1) for window, scale in
                     self.roi_windows(regions, width, height)]
        boxes = np.concatenate([f[0] for f in found]) if found else np.zeros((0, 4))
        if len(boxes) == 0:
            return []
        scores = np.concatenate([f[1] for f in found])
        landmarks = np.concatenate([f[2] for f in found])
        cut = np.concatenate([f[3] for f in found])
        x0 = np.clip(boxes[:, 0], 0, width)
        y0 = np.clip(boxes[:, 1], 0, height)
        x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
        y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
        w, h = x1 - x0, y1 - y0
        keep = (np.minimum(w, h) >= self.config.min_face_size) & (scores >= self.config.confidence_threshold)
        # whole faces before faces cut by a region border, then score, then larger faces (Haar scores tie)
        order = [int(i) for i in np.lexsort((-(w * h), -scores, cut)) if keep[i]]
        if regions is not None:
            order = _drop_duplicates(order, np.stack([x0, y0, x1, y1], axis=1))
            order.sort(key=lambda i: (-scores[i], -(w[i] * h[i])))
        result = []
        for i in order[:self.config.max_faces]:
            marks = None if np.isnan(landmarks[i, 0, 0]) else landmarks[i].copy()
            result.append(Detection(box=(float(x0[i]), float(y0[i]), float(w[i]), float(h[i])),
                                    score=float(scores[i]), landmarks=marks))
        return result

    def roi_windows(self, regions, width: int, height: int) -> list[tuple[tuple[int, int, int, int], float]]:
        """The crops searched for ``regions`` in a ``width`` x ``height`` frame.

        Each box (x, y, w, h) gives a square of side ``roi_scale * max(w, h)`` centred on it, clipped
        to the frame, and the factor that makes the face ``roi_face_px`` pixels (at most 4x
        enlargement; the resized window at most ``roi_scale * roi_face_px`` pixels a side). Boxes entirely
        outside the frame or empty give no window.

        Returns:
            [((x0, y0, x1, y1) integer pixels of the frame, scale factor), ...]
        Raises:
            ValueError: a region is not 4 finite numbers.
        """
        cfg = self.config
        windows = []
        for region in regions:
            box = np.asarray(region, dtype=np.float64).reshape(-1)
            if box.shape != (4,) or not np.all(np.isfinite(box)):
                raise ValueError(f'{type(self).__name__}.detect: a region must be (x, y, w, h), got {region!r}')
            side = max(box[2], box[3])
            if side <= 0:
                continue
            cx, cy, half = box[0] + box[2] / 2, box[1] + box[3] / 2, cfg.roi_scale * side / 2
            x0, y0 = max(0, int(np.floor(cx - half))), max(0, int(np.floor(cy - half)))
            x1, y1 = min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                # at most roi_scale * roi_face_px (128) pixels after resizing: the window's pixel rounding would
                # make it 129 and the network's input 160 (sizes go up in steps of 32): 1.56x the work
                longest = cfg.roi_scale * cfg.roi_face_px / max(x1 - x0, y1 - y0)
                windows.append(((x0, y0, x1, y1), min(MAX_ROI_UPSCALE, cfg.roi_face_px / side, longest)))
        return windows

    def _detect_window(self, bgr: np.ndarray, window: tuple[int, int, int, int], scale: float, threads: int):
        """Run ``_detect`` on ``bgr[y0:y1, x0:x1]`` resized by ``scale`` with ``threads`` CPU threads;
        results in frame pixels.

        Returns:
            (boxes float64[N, 4] (x, y, w, h) in frame pixels, not clipped; scores float[N];
             landmarks float32[N, 5, 2] in frame pixels, NaN when the detector has none;
             cut bool[N]: the box reaches a window border that is not a frame border, i.e. the face
             may be cut off and is better seen in another window)
        """
        x0, y0, x1, y1 = window
        crop = bgr[y0:y1, x0:x1]
        ch, cw = crop.shape[:2]
        size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
        if self.input_limit is not None and max(size) > self.input_limit:
            if not self._warned_limit:
                self._warned_limit = True
                log.warning('%s: a %dx%d detector input exceeds the %d px its engine was built for; inputs are '
                            'downscaled to fit (restart to rebuild the engine for the new settings)',
                            type(self).__name__, size[0], size[1], self.input_limit)
            shrink = self.input_limit / max(size)
            size = (max(1, min(self.input_limit, int(cw * scale * shrink))),
                    max(1, min(self.input_limit, int(ch * scale * shrink))))
        if size != (cw, ch):
            # area averaging where the window shrinks 2x or more (ROI windows are made for a 64 px face, so
            # any face over 128 px), bilinear otherwise; resample's fast path: OpenCV's INTER_AREA at such
            # ratios cost 0.6-0.7 ms a window, ~half of the window's detection
            crop = resample(crop, size)
        # exact per-axis factors, so boxes map back without rounding drift
        sx, sy = cw / size[0], ch / size[1]
        boxes, scores, marks = self._detect(np.ascontiguousarray(crop), self.config.min_face_size / max(sx, sy),
                                            threads)
        n = len(boxes)
        boxes = np.asarray(boxes, np.float64).reshape(n, 4) * (sx, sy, sx, sy) + (x0, y0, 0, 0)
        if marks is None:
            marks = np.full((n, 5, 2), np.nan, np.float32)
        else:
            marks = (np.asarray(marks, np.float32).reshape(n, 5, 2) * np.array([sx, sy], np.float32)
                     + np.array([x0, y0], np.float32))
        height, width = bgr.shape[:2]
        tol_x, tol_y = sx, sy   # one detector pixel
        cut = (((boxes[:, 0] <= x0 + tol_x) & (x0 > 0)) | ((boxes[:, 1] <= y0 + tol_y) & (y0 > 0))
               | ((boxes[:, 0] + boxes[:, 2] >= x1 - tol_x) & (x1 < width))
               | ((boxes[:, 1] + boxes[:, 3] >= y1 - tol_y) & (y1 < height)))
        return boxes, np.asarray(scores, np.float64).reshape(n), marks, cut

    @abstractmethod
    def _detect(self, small_bgr: np.ndarray, min_size: float,
                threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Detect on the downscaled copy of the frame or of a region.

        Args:
            small_bgr: uint8[h, w, 3] C-contiguous BGR.
            min_size: the smallest face side worth finding, in ``small_bgr`` pixels.
            threads: CPU threads to use, where the detector's library lets a call choose.
        Returns:
            (boxes float[N, 4] x, y, w, h in small_bgr pixels, scores float[N] 0..1,
             landmarks float[N, 10] (x, y pairs) or None)
        """


def _drop_duplicates(order: list[int], corners: np.ndarray) -> list[int]:
    """Greedy suppression over ``order`` (best first): a box lying mostly inside a kept one
    (intersection / smaller area >= ROI_DUPLICATE_OVERLAP) is the same face seen by another region.
    (Not IoU, so not cv2.dnn.NMSBoxes: a face cut by a region border is a small box inside the whole one.)

    corners: float[N, 4] (x0, y0, x1, y1). Returns the kept indices, in ``order``'s order.
    """
    boxes = corners[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iw = np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    ih = np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    smaller = np.minimum(area[:, None], area[None, :])
    overlap = np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)
    duplicate = overlap >= ROI_DUPLICATE_OVERLAP
    kept = np.ones(len(order), bool)
    for i in range(len(order)):      # greedy: only a kept box suppresses the ones after it
        if kept[i]:
            kept[i + 1:] &= ~duplicate[i, i + 1:]
    return [i for i, k in zip(order, kept) if k]
