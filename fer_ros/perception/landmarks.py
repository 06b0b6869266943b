"""68 face landmarks per face: face-api's landmark network, run on the detector's face boxes.

Why a second landmark source: the detector's five points do not follow a head's in-plane rotation
(measured with the repository's astronaut rotated by 25 degrees: the detector's eye line stays within
1 degree of level, this network's turns by 25; ``make bench-people`` reports both), and head pose and
the embedding crop need the real eye line.

The network (made by ``fer-convert-face-api`` from the MIT npm package ``@vladmandic/face-api``) carries a
``LandmarkSpec`` in its ONNX metadata (key ``fer_ros_landmarks``). Input: the square around the face box
(side = the box's longer side, centred on it; outside the frame the edge pixels repeat), resized to
``size`` x ``size``, BGR 0..255. Output: float32[N, 68, 2] (x, y) as fractions of that square, in the
iBUG 300-W order (0-16 jaw, 17-26 brows, 27-35 nose, 36-41 the person's right eye, 42-47 left eye,
48-67 mouth), mapped here to source pixels.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fer_ros.core.spec import MetadataSpec
from fer_ros.perception.preprocess import crop_square, square_box
from fer_ros.perception.resample import resample

NUM_POINTS = 68
# The detector's five points (right eye, left eye, nose tip, right mouth corner, left mouth corner) from
# the 68: the eyes' centres, the nose tip, the mouth's outer corners.
RIGHT_EYE, LEFT_EYE, NOSE_TIP, MOUTH_RIGHT, MOUTH_LEFT = slice(36, 42), slice(42, 48), 30, 48, 54


@dataclass(frozen=True)
class LandmarkSpec(MetadataSpec):
    """Input/output contract of the landmark network (stored in the ONNX metadata).

    input_name: float32[N, 3, size, size] BGR 0..255 (normalisation inside the graph).
    output_name: float32[N, points, 2], fractions 0..1 of the input square. extra: provenance, licence.
    """

    METADATA_KEY: ClassVar[str] = 'fer_ros_landmarks'
    KIND: ClassVar[str] = 'face landmark network'
    MADE_BY: ClassVar[str] = 'fer-convert-face-api'

    name: str = 'face-api 68-point landmarks'
    input_name: str = 'image'
    output_name: str = 'landmarks'
    size: int = 112
    points: int = NUM_POINTS
    channel_order: str = 'BGR'
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.channel_order != 'BGR' or self.points != NUM_POINTS or self.size < 16:
            raise ValueError(f'LandmarkSpec: needs BGR input, {NUM_POINTS} points and size >= 16, got '
                             f'{self.channel_order}, {self.points}, {self.size}')



def landmarks_due(faces: Sequence[str], located: dict[str, float], now: float, interval_s: float,
                  frame_period_s: float) -> list[str]:
    """Which of ``faces`` (ids) get new landmarks on this frame; the others' follow their boxes.

    located: face id -> when its landmarks were last located (absent: never). A face never located is
    always due (it has nothing to follow its box with). Of the others, those located ``interval_s`` ago or
    more are due, the longest-waiting first, but only as many as refresh every face once per
    ``interval_s`` at this frame rate (``frame_period_s``: the time since the camera's previous frame):
    ceil(len(faces) * frame_period_s / interval_s), at least one, at most all. Why
    a limit: faces found together fall due together, and locating all of them on one frame (~2 ms each
    on a 2-core CPU, 5 faces ~10 ms) made that frame the slowest of every ``interval_s``; spread over the
    frames, they cost each frame a little and fall due apart from then on. ``interval_s`` 0: every face,
    every frame.
    """
    new = [f for f in faces if f not in located]
    stale = sorted((f for f in faces if f in located and now - located[f] >= interval_s), key=located.__getitem__)
    if interval_s <= 0:
        return new + stale
    share = min(max(0.0, frame_period_s), interval_s) / interval_s    # a camera's first frame: +inf -> 1
    budget = max(1, math.ceil(len(faces) * share - 1e-9))
    return new + stale[:budget]


def five_points(points: np.ndarray) -> np.ndarray:
    """float32[5, 2] in the detector's order from float[68, 2] landmarks."""
    p = np.asarray(points, np.float32)
    return np.stack([p[RIGHT_EYE].mean(axis=0), p[LEFT_EYE].mean(axis=0), p[NOSE_TIP], p[MOUTH_RIGHT],
                     p[MOUTH_LEFT]])


class FaceLandmarker:
    """The landmark network behind a runner: ``locate(bgr, boxes)`` -> float32[N, 68, 2] source pixels.

    Args:
        runner: a fer_ros.backends tensor runner (``run(feeds, outputs)`` and ``metadata``).
        source: the model file (for messages).
    Raises:
        ValueError: the model has no landmark metadata.
    """

    def __init__(self, runner, source: str) -> None:
        self.runner = runner
        self.source = source
        self.spec = LandmarkSpec.from_metadata(runner.metadata, source)

    def locate(self, bgr: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
        """float32[N, 68, 2] landmarks (x, y source pixels) of N face boxes (x, y, w, h); one network call."""
        size = self.spec.size
        if len(boxes) == 0:
            return np.zeros((0, NUM_POINTS, 2), np.float32)
        chips = np.empty((len(boxes), size, size, 3), np.uint8)
        origins = np.empty((len(boxes), 3), np.float64)            # x0, y0, side of each square
        for i, box in enumerate(boxes):
            origins[i] = square_box(box, 0.0)
            crop = crop_square(bgr, box, 0.0)
            chips[i] = resample(crop, (size, size))
        batch = np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32)
        out = np.asarray(self.runner.run({self.spec.input_name: batch}, [self.spec.output_name])[self.spec.output_name],
                         np.float32)
        if out.shape != (len(boxes), NUM_POINTS, 2):
            raise ValueError(f'{self.source}: landmark output shape {list(out.shape)}, expected '
                             f'[{len(boxes)}, {NUM_POINTS}, 2]')
        return (out * origins[:, None, 2:3] + origins[:, None, :2]).astype(np.float32)

    def warm_up(self) -> None:
        """One blank call, so the first face met does not pay the session's first-run cost."""
        size = self.spec.size
        self.runner.run({self.spec.input_name: np.zeros((1, 3, size, size), np.float32)}, [self.spec.output_name])

    def close(self) -> None:
        self.runner.close()
