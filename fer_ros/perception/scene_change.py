"""Has a camera's view changed, outside its tracked faces, since its last whole-frame scan? (ROS-free)

The whole-frame scan (fer_ros.perception.full_scan) exists to find faces the ROI path does not search
for. When nothing changed in the frame outside the tracked faces' search windows since the last scan,
a new scan would see the same pixels there and find the same (no) faces: the detector is deterministic
on identical input. ``SceneChange`` answers that question cheaply, so the schedule can scan such an idle
scene every ``idle_scan_s`` instead of every ``full_scan_s``.

How: a gray thumbnail ``THUMB_WIDTH`` pixels wide of every frame considered (~0.15 ms at 640x480), kept
for the frame each scan started on; a frame's thumbnail is compared with its camera's kept one, pixel by
pixel, outside the tracked faces' ROI search windows (``roi_scale`` x the box's longer side, the square
the ROI path searches on every frame: faces and heads move there, and a face appearing there is found by
the ROI search anyway). The scene changed when at least ``min_changed_pixels`` thumbnail pixels differ by
more than ``CHANGE_LEVEL`` gray levels.

A camera that moves (a robot turning its head or driving) changes nearly every pixel: the gate then
says "changed" on every frame and the scans run as often as without it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

# Thumbnail width in pixels: 640 px frames shrink 8x (80x60 thumbnails); the smallest face the detector
# finds (below) still covers a few whole thumbnail pixels.
THUMB_WIDTH = 80
# Each thumbnail pixel averages a SAMPLES x SAMPLES grid of frame pixels (every 2nd pixel at 640): sensor
# noise shrinks SAMPLES-fold, and the thumbnail costs ~0.15 ms instead of ~0.25 ms for averaging all of
# them (measured on the 2-core machines).
SAMPLES = 4
# A thumbnail pixel changed when its gray level moved by more than this (of 255): sensor noise averaged
# over 16 samples (sigma ~0.5-1 level) stays far below it, and a face replacing background at a pixel
# moves it by tens of levels. Borderline cases only make the gate scan more, never less, than needed.
CHANGE_LEVEL = 12
# The smallest face the whole-frame detector finds, in pixels of its input (the frame downscaled to
# ``max_side``): yunet at 640 finds 33 % of 24 px faces, 75 % of 32 px ones (docs/performance.md, recall
# by face size). A face smaller than this is not found by a scan anyway.
DETECTOR_SMALLEST_FACE_PX = 24


def min_changed_pixels(frame_size: tuple[int, int], max_side: int, min_face_size: int) -> int:
    """The changed-pixel count that makes a scene 'changed' for frames of ``frame_size`` (width, height).

    Rule: the number of thumbnail pixels that the smallest face a scan can find covers completely, placed
    anywhere. That face's side in frame pixels is the larger of ``min_face_size`` (smaller faces are
    dropped) and DETECTOR_SMALLEST_FACE_PX scaled up when the frame is larger than ``max_side``; in
    thumbnail pixels it is L = side * THUMB_WIDTH / width, and a square of side L covers at least
    floor(L) - 1 whole pixels along each axis, wherever it lies. 640x480 defaults: 24 px -> L = 3 ->
    (3 - 1)^2 = 4 pixels (a 40 px face: 5 -> 16).
    """
    width, height = frame_size
    scale_up = max(1.0, max(width, height) / max_side)
    side_px = max(float(min_face_size), DETECTOR_SMALLEST_FACE_PX * scale_up)
    side_thumb = side_px * min(THUMB_WIDTH, width) / width
    return max(1, math.floor(side_thumb) - 1) ** 2


def thumbnail(bgr: np.ndarray) -> np.ndarray:
    """uint8[h, w] gray thumbnail of a uint8[H, W, 3] BGR frame, w = min(THUMB_WIDTH, W), h in proportion."""
    height, width = bgr.shape[:2]
    tw = min(THUMB_WIDTH, width)
    th = max(1, round(height * tw / width))
    sampled = cv2.resize(bgr, (tw * SAMPLES, th * SAMPLES), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(cv2.cvtColor(sampled, cv2.COLOR_BGR2GRAY), (tw, th), interpolation=cv2.INTER_AREA)


class SceneChange:
    """Per camera: the thumbnail of the frame its last scan started on, and whether a frame differs from it.

    Args:
        roi_scale: side of the square masked around each tracked box, as a multiple of its longer side
            (``DetectorConfig.roi_scale``: the ROI path's search window).
        max_side, min_face_size: the detector's, for ``min_changed_pixels``.
    """

    def __init__(self, roi_scale: float, max_side: int, min_face_size: int) -> None:
        self.roi_scale = float(roi_scale)
        self.max_side = int(max_side)
        self.min_face_size = int(min_face_size)
        self._kept: dict[Any, tuple[tuple[int, int], np.ndarray]] = {}   # key -> (frame size, thumbnail)

    def keep(self, key: Any, bgr: np.ndarray, thumb: np.ndarray | None = None) -> None:
        """Remember ``bgr`` (or its already made ``thumb``) as the frame of ``key``'s latest scan."""
        self._kept[key] = ((bgr.shape[1], bgr.shape[0]), thumbnail(bgr) if thumb is None else thumb)

    def changed(self, key: Any, bgr: np.ndarray, boxes: Sequence[Sequence[float]]) -> tuple[bool, np.ndarray]:
        """Whether ``bgr`` differs from ``key``'s kept frame outside the search windows of ``boxes``
        ((x, y, w, h) in frame pixels); and its thumbnail (``keep`` takes it when a scan starts). No kept
        frame, or one of another size: changed."""
        thumb = thumbnail(bgr)
        size = (bgr.shape[1], bgr.shape[0])
        kept = self._kept.get(key)
        if kept is None or kept[0] != size:
            return True, thumb
        differs = cv2.absdiff(thumb, kept[1]) > CHANGE_LEVEL
        sx, sy = thumb.shape[1] / size[0], thumb.shape[0] / size[1]
        for x, y, w, h in boxes:
            half = self.roi_scale * max(w, h) / 2
            cx, cy = x + w / 2, y + h / 2
            differs[max(0, math.floor((cy - half) * sy)):max(0, math.ceil((cy + half) * sy)),
                    max(0, math.floor((cx - half) * sx)):max(0, math.ceil((cx + half) * sx))] = False
        limit = min_changed_pixels(size, self.max_side, self.min_face_size)
        return int(np.count_nonzero(differs)) >= limit, thumb

    def forget(self, key: Any) -> None:
        self._kept.pop(key, None)
