"""The libfacedetection CNN (YuNet family) as an ONNX model run by a fer_ros backend.

The model file (made by ``fer-convert-face-detector`` from the pinned ``yuface`` wheel; see
fer_ros/tools/convert_face_detector.py) carries a ``DetectorSpec`` in its metadata (key
``fer_ros_detector``; stored and read like the classifier's spec, ``fer_ros.core.spec.MetadataSpec``), so the
input contract, strides and decoding are read from the artefact.

Network contract (``DetectorSpec``):
- input ``image``: float32[N, 3, H, W], BGR, 0..255 (no normalisation), H and W multiples of 32;
  a frame of another size is zero-padded on the right and bottom (what libfacedetection does).
- outputs, anchors ordered stride 8 grid (row-major), then 16, then 32 (A = sum of (H/s)(W/s)):
  ``scores`` float32[N, A] = sqrt(sigmoid(cls) * sigmoid(obj)), 0..1;
  ``boxes`` float32[N, A, 4] raw (dx, dy, dw, dh): centre = (dx * s + col * s, dy * s + row * s),
  size = (exp(dw) * s, exp(dh) * s);
  ``landmarks`` float32[N, A, 10] raw (x, y) pairs: point = (lx * s + col * s, ly * s + row * s).
Decoding and the score threshold run here in numpy on the few anchors over the threshold, non-maximum
suppression in OpenCV (libfacedetection's own rules: greedy NMS at IoU ``nms_iou``, at most ``top_k``
candidates).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from fer_ros.core.spec import MetadataSpec
from fer_ros.perception.detectors.base import DetectorConfig, FaceDetector
from fer_ros.util.paths import default_detector_model_path

METADATA_KEY = 'fer_ros_detector'


@dataclass(frozen=True)
class DetectorSpec(MetadataSpec):
    """Input/output contract of the CNN face detector (stored in the ONNX metadata).

    input_name: float32[N, 3, H, W] input, channel order ``channel_order``, values 0..255.
    size_multiple: H and W must be multiples of this (zero padding right/bottom).
    strides: feature strides, in the order the anchors are concatenated.
    nms_iou / top_k: libfacedetection's suppression (IoU above which the lower-scored box is dropped;
        candidates kept before NMS). extra: provenance, licence, formulas.
    """

    name: str = 'libfacedetection'
    input_name: str = 'image'
    channel_order: str = 'BGR'
    size_multiple: int = 32
    strides: tuple[int, ...] = (8, 16, 32)
    scores_name: str = 'scores'
    boxes_name: str = 'boxes'
    landmarks_name: str = 'landmarks'
    nms_iou: float = 0.3
    top_k: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)

    METADATA_KEY: ClassVar[str] = METADATA_KEY
    KIND: ClassVar[str] = 'face detector'
    MADE_BY: ClassVar[str] = 'fer-convert-face-detector'

    def __post_init__(self) -> None:
        if self.channel_order != 'BGR':
            raise ValueError(f"DetectorSpec.channel_order must be 'BGR', got {self.channel_order!r}")
        if self.size_multiple < 1 or any(self.size_multiple % s for s in self.strides) or not self.strides:
            raise ValueError(f'DetectorSpec: size_multiple {self.size_multiple} must be a multiple of every '
                             f'stride {self.strides}')
        if not 0.0 < self.nms_iou <= 1.0 or self.top_k < 1:
            raise ValueError(f'DetectorSpec: nms_iou {self.nms_iou} must be in (0, 1], top_k {self.top_k} >= 1')


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """(H, W) rounded up to multiples of ``multiple`` (the network input of a height x width image)."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def to_network_input(bgr: np.ndarray, multiple: int) -> np.ndarray:
    """uint8[h, w, 3] BGR -> float32[1, 3, H, W] 0..255, zero-padded right/bottom to multiples of ``multiple``."""
    height, width = bgr.shape[:2]
    big_h, big_w = padded_size(height, width, multiple)
    blob = (np.empty if (big_h, big_w) == (height, width) else np.zeros)((1, 3, big_h, big_w), np.float32)
    # plane by plane (cv2.split): measured 0.34 ms for a 640x480 frame against 0.81 ms for one strided
    # transpose copy, on the whole-frame scan's path
    for channel, plane in enumerate(cv2.split(bgr)):
        blob[0, channel, :height, :width] = plane
    return blob


class AnchorGrid:
    """Anchor positions for one padded input size: float32[A, 2] (col * s, row * s) and float32[A] strides."""

    def __init__(self, height: int, width: int, strides: tuple[int, ...]) -> None:
        points, steps = [], []
        for s in strides:
            rows, cols = np.mgrid[0:height // s, 0:width // s]
            points.append(np.stack([cols.ravel(), rows.ravel()], axis=1) * s)
            steps.append(np.full(rows.size, s))
        self.points = np.concatenate(points).astype(np.float32)
        self.strides = np.concatenate(steps).astype(np.float32)


def decode(scores: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray, grid: AnchorGrid,
           threshold: float, spec: DetectorSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces from one image's raw outputs (libfacedetection's decoding and greedy NMS).

    Args:
        scores float32[A]; boxes float32[A, 4]; landmarks float32[A, 10] (the network's outputs for one
        image); grid: the anchors of that input size; threshold: minimum score 0..1.
    Returns:
        (boxes float32[N, 4] x, y, w, h; scores float32[N]; landmarks float32[N, 10]) in network-input
        pixels, highest score first.
    """
    if scores.shape[0] != grid.points.shape[0]:
        raise ValueError(f'detector output has {scores.shape[0]} anchors; the input size needs '
                         f'{grid.points.shape[0]}')
    keep = np.flatnonzero(scores >= threshold)
    keep = keep[np.argsort(-scores[keep], kind='stable')][:spec.top_k]
    s = grid.strides[keep, None]
    prior = grid.points[keep]
    centre = boxes[keep, :2] * s + prior
    size = np.exp(boxes[keep, 2:]) * s
    corners = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    marks = (landmarks[keep].reshape(-1, 5, 2) * s[:, :, None] + prior[:, None, :]).reshape(-1, 10)
    xywh = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
    # libfacedetection's greedy NMS (a box whose IoU with a better kept one exceeds nms_iou is dropped) is
    # OpenCV's: same kept boxes on the real photos and sample frames (test_cnn_detection.py)
    chosen = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores[keep].tolist(), 0.0, spec.nms_iou),
                        np.int64).reshape(-1)
    return (xywh[chosen].astype(np.float32), scores[keep][chosen].astype(np.float32),
            marks[chosen].astype(np.float32))


class CnnFaceNetwork:
    """The detector network behind a runner: ``run(bgr, threshold)`` -> decoded faces of one image.

    Args:
        runner: a fer_ros.backends tensor runner (``run(feeds) -> {name: array}`` and ``metadata``),
            created outside the core so the core imports no backend.
        source: the model file (for messages).
    """

    def __init__(self, runner, source: str) -> None:
        self.runner = runner
        self.spec = DetectorSpec.from_metadata(runner.metadata, source)
        self._grids: dict[tuple[int, int], AnchorGrid] = {}
        self._outputs = [self.spec.scores_name, self.spec.boxes_name, self.spec.landmarks_name]

    def __call__(self, bgr: np.ndarray, threshold: float):
        """uint8[h, w, 3] BGR -> (boxes float32[N, 4] x, y, w, h; scores float32[N]; landmarks float32[N, 10])
        in ``bgr`` pixels (padding only adds area right/bottom, so coordinates are unchanged)."""
        blob = to_network_input(bgr, self.spec.size_multiple)
        key = blob.shape[2:]
        if key not in self._grids:
            self._grids[key] = AnchorGrid(key[0], key[1], self.spec.strides)
        out = self.runner.run({self.spec.input_name: blob}, self._outputs)
        scores, boxes, marks = (np.asarray(out[name])[0] for name in self._outputs)
        return decode(scores, boxes, marks, self._grids[key], threshold, self.spec)



class YuNetDetector(FaceDetector):
    """Detector kind 'yunet': the libfacedetection CNN as ONNX on a fer_ros backend.

    Args:
        config: DetectorConfig (model_path '' = the default model; backend: where it runs).
        runner_factory: ``f(model_path, config) -> TensorRunner`` (fer_ros.backends.create_detector_runner).
    Raises:
        FileNotFoundError: no model file. BackendError: it does not load. ValueError: no detector metadata.
    """

    name = 'yunet'

    def __init__(self, config: DetectorConfig, runner_factory) -> None:
        super().__init__(config)
        self.model_path = config.model_path or default_detector_model_path()
        self._runner_factory = runner_factory
        self.network = CnnFaceNetwork(runner_factory(self.model_path, config), self.model_path)
        self.device = getattr(self.network.runner, 'device', 'CPU')
        self.input_limit = getattr(self.network.runner, 'max_input_side', None)
        self.selected = getattr(self.network.runner, 'selected', '')
        self._networks = {config.threads: self.network}

    def _detect(self, small_bgr, min_size, threads):
        # ROI crops ask for one thread: a 128 px crop is too little work to share, and measured here
        # (load ~6 on 2 cores) a 2-thread session made ROI detection 2.7x (1 face) to 3x (5 faces)
        # slower. A CPU session's thread count is fixed, so each count gets its own (small) session;
        # a GPU runner has no CPU threads to choose, so it is shared (one engine, not one per count).
        if self.device != 'CPU':
            return self.network(small_bgr, self.config.confidence_threshold)
        if threads not in self._networks:
            config = dataclasses.replace(self.config, num_threads=threads)
            self._networks[threads] = CnnFaceNetwork(self._runner_factory(self.model_path, config), self.model_path)
        # candidates below the configured threshold are dropped by the base class anyway; filtering
        # here keeps decoding and NMS to the few anchors that matter
        return self._networks[threads](small_bgr, self.config.confidence_threshold)
