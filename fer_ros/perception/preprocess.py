"""Face crops -> the classifier's input batch, driven entirely by the model's ModelSpec.

Every face of a frame becomes one row of ONE float32[N, C, H, W] batch:
1. ``square_box``: a square centred on the face box, side = longer box side * (1 + margin), so a
   margin of 0.2 adds 10 % of the face size on each side (the `fer` library's Haar crop + 10 px is
   about the same for a 100 px face).
2. The part of the square inside the image is cut out; the part outside (faces at the frame border) is
   filled by replicating the edge pixels, so the face keeps its position and scale in the crop
   instead of being stretched or shifted.
3. BGR -> gray (spec.channels == 1) or BGR -> RGB (spec.channels == 3), then resize to
   spec.width x spec.height (INTER_AREA when shrinking, INTER_LINEAR when enlarging).
4. x = (pixel / 255 - spec.mean[c]) / spec.std[c], NCHW.

With ``crop_mode='aligned'`` a face that has landmarks is instead cut by one ``cv2.warpAffine`` straight
from the frame to the model's input size, eyes level (``fer_ros.perception.align``); faces without landmarks
(the Haar detector gives none) fall back to the square crop. ``with_mirrors`` appends each face's
horizontal mirror to the batch for test-time augmentation (``average_mirrors`` folds the output back).
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fer_ros.core.spec import ModelSpec
from fer_ros.perception.align import aligned_transform

MAX_MARGIN = 2.0
# 'aligned': eyes level, framed by the landmarks (square crop where a face has none); 'square': box only.
CROP_MODES = ('aligned', 'square')
# Mirrored-view test-time augmentation: 'model' = the model's ModelSpec.mirror_tta; 'always' / 'never'
# override it (not 'on' / 'off': YAML, and so ROS parameter files and -p overrides, read those as booleans).
MIRROR_TTA_CHOICES = ('model', 'always', 'never')


def square_box(box: Sequence[float], margin: float) -> tuple[int, int, int]:
    """The square crop window of a face box.

    Args:
        box: (x, y, w, h) in image pixels, w and h > 0.
        margin: 0..2; the side is max(w, h) * (1 + margin).
    Returns:
        (x0, y0, side) integers; may extend past the image (x0 < 0, x0 + side > width, ...).
    Raises:
        ValueError: margin out of range or a box with w <= 0 or h <= 0.
    """
    if not 0.0 <= margin <= MAX_MARGIN:
        raise ValueError(f'margin must be in 0..{MAX_MARGIN}, got {margin}')
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0):
        raise ValueError(f'face box {tuple(box)} has no area')
    side = max(1, round(max(w, h) * (1.0 + margin)))
    cx, cy = x + w / 2.0, y + h / 2.0
    return round(cx - side / 2.0), round(cy - side / 2.0), side


def crop_square(bgr: np.ndarray, box: Sequence[float], margin: float) -> np.ndarray:
    """uint8[side, side, 3]: the square window of ``box``; outside-the-image parts replicate the edge.

    Raises:
        ValueError: the window does not overlap the image at all (or as in ``square_box``).
    """
    x0, y0, side = square_box(box, margin)
    height, width = bgr.shape[:2]
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + side, width), min(y0 + side, height)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f'face box {tuple(box)} lies outside the {width}x{height} image')
    crop = bgr[cy0:cy1, cx0:cx1]
    top, left = cy0 - y0, cx0 - x0
    bottom, right = y0 + side - cy1, x0 + side - cx1
    if top or left or bottom or right:
        crop = cv2.copyMakeBorder(crop, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return crop


_COLOR = {1: cv2.COLOR_BGR2GRAY, 3: cv2.COLOR_BGR2RGB}


def crop_faces(bgr: np.ndarray, boxes: Sequence[Sequence[float]], spec: ModelSpec, margin: float = 0.2,
               landmarks: Sequence[np.ndarray | None] | None = None, crop_mode: str = 'square') -> np.ndarray:
    """All faces of a frame as one classifier batch.

    Args:
        bgr: uint8[H, W, 3] BGR frame.
        boxes: N face boxes (x, y, w, h) in frame pixels.
        spec: the model's input contract (size, channels, mean/std).
        margin: see ``square_box`` (the aligned crop frames the face the same way on upright faces).
        landmarks: None, or N entries of float32[5, 2] frame pixels or None (used by 'aligned').
        crop_mode: one of CROP_MODES.
    Returns:
        float32[N, spec.channels, spec.height, spec.width], C-contiguous; (0, C, H, W) when N == 0.
    Raises:
        ValueError: bad frame, margin, box, landmarks or crop_mode.
    """
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        desc = f'{bgr.dtype}{list(bgr.shape)}' if isinstance(bgr, np.ndarray) else type(bgr).__name__
        raise ValueError(f'crop_faces expects a uint8[H, W, 3] BGR frame, got {desc}')
    if crop_mode not in CROP_MODES:
        raise ValueError(f'crop_mode must be one of {CROP_MODES}, got {crop_mode!r}')
    if not 0.0 <= margin <= MAX_MARGIN:
        raise ValueError(f'margin must be in 0..{MAX_MARGIN}, got {margin}')
    if landmarks is not None and len(landmarks) != len(boxes):
        raise ValueError(f'{len(landmarks)} landmark sets for {len(boxes)} face boxes')
    size = (spec.width, spec.height)
    crops = np.empty((len(boxes), spec.height, spec.width, spec.channels), np.uint8)
    for i, box in enumerate(boxes):
        matrix = None
        if crop_mode == 'aligned' and landmarks is not None:
            matrix = aligned_transform(landmarks[i], margin, spec.width, spec.height)
        if matrix is not None:
            # colour conversion after the warp: fewer pixels than the frame, and both steps are linear
            face = cv2.cvtColor(warp_face(bgr, matrix, size), _COLOR[spec.channels])
        else:
            # colour conversion before the resize: the resize (INTER_AREA, the costly step) then works on
            # one plane instead of three for a gray model (measured 0.35 ms per face for BGR under load);
            # both steps are linear, so only rounding differs
            crop = cv2.cvtColor(crop_square(bgr, box, margin), _COLOR[spec.channels])
            shrinking = crop.shape[0] >= spec.height and crop.shape[1] >= spec.width
            face = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        crops[i] = face.reshape(spec.height, spec.width, spec.channels)
    return normalize(crops, spec)


# A bilinear warp that shrinks by more than this aliases (hair and eyelashes turn into noise): measured
# on a 451 px face, the surprise probability fell from 0.87 (area-averaged square crop) to 0.62.
MAX_WARP_SHRINK = 2


def warp_face(bgr: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8[size[1], size[0], 3]: ``cv2.warpAffine(bgr, matrix, size)``, anti-aliased for large faces.

    A face shrunk by a factor f > MAX_WARP_SHRINK is warped to floor(f) times the output size and then
    box-averaged (INTER_AREA with an integer factor) to it, like the square crop's resize; smaller
    faces take the one warp straight to the output. Outside-the-frame pixels replicate the edge.
    """
    linear = matrix[:, :2]
    shrink = 1.0 / max(1e-9, float(np.sqrt(abs(np.linalg.det(linear)))))   # source pixels per output pixel
    factor = int(min(8, shrink // 1))
    if factor <= MAX_WARP_SHRINK:
        return cv2.warpAffine(bgr, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    big = cv2.warpAffine(bgr, matrix * factor, (size[0] * factor, size[1] * factor), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(big, size, interpolation=cv2.INTER_AREA)


def with_mirrors(batch: np.ndarray) -> np.ndarray:
    """float32[N, C, H, W] -> float32[2N, C, H, W]: the N faces, then their horizontal mirrors (same order)."""
    return np.ascontiguousarray(np.concatenate([batch, batch[:, :, :, ::-1]], axis=0))


def average_mirrors(probabilities: np.ndarray) -> np.ndarray:
    """float32[2N, K] output of a ``with_mirrors`` batch -> float32[N, K]: each face's mean with its mirror.

    The mean of two probability rows is a probability row (sums to 1)."""
    n = probabilities.shape[0] // 2
    if probabilities.shape[0] != 2 * n:
        raise ValueError(f'a mirrored batch has an even number of rows, got {probabilities.shape[0]}')
    return ((probabilities[:n] + probabilities[n:]) * 0.5).astype(np.float32, copy=False)


def normalize(crops: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8[N, H, W, C] (gray or RGB) -> float32[N, C, H, W] with (pixel / 255 - mean) / std."""
    scale: np.ndarray = (1.0 / (255.0 * np.asarray(spec.std, np.float32))).reshape(1, -1, 1, 1)
    shift: np.ndarray = (np.asarray(spec.mean, np.float32) / np.asarray(spec.std, np.float32)).reshape(1, -1, 1, 1)
    batch = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
    batch *= scale
    batch -= shift
    return batch
