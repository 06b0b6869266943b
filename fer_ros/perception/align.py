"""Face alignment from the detector's five landmarks: eyes level, scaled and centred by the eye geometry.

FER classifiers are trained on roughly upright faces; a head tilted by 20-30 degrees (common when
someone looks at a robot from the side) moves the mouth and brows out of the places the network
learned. ``aligned_transform`` returns the 2x3 affine matrix that maps the source image straight onto
the model's input (one ``cv2.warpAffine`` per face):

- rotation: the line from the person's right eye to their left eye (landmarks 0 -> 1, image left ->
  right for a face looking at the camera) becomes horizontal;
- scale: the face measure ``s = max(eye distance, distance from the eyes' centre to the mouth's
  centre)`` (the second term keeps a turned head, whose eyes are close together, from being blown
  up); the output side covers ``ALIGNED_SIDE_PER_FACE_MEASURE * (1 + margin) / 1.2 * s`` source pixels;
- centre: ``EYES_ABOVE_CENTRE * s`` below the eyes' centre, perpendicular to the eye line.

The two constants reproduce the geometry of the square crop (``fer_ros.perception.preprocess.square_box``,
margin 0.2) on upright faces: measured with yuface on the 35 faces of the repository's photos and the
benchmark's sample photos (not its labels), the square side was 3.23 (median) face measures and its
centre 0.34 face measures below the eyes (horizontal offset 0.06). So an upright face gets about the
crop the model was already given, and a tilted one the same crop turned upright.

Landmarks: float32[5, 2] in source pixels, in the order (right eye, left eye, nose tip, right mouth
corner, left mouth corner) of the person, i.e. what yuface and the ONNX port of its network return.
Detectors without landmarks (Haar) give None: those faces keep the square crop.
"""
from __future__ import annotations

import numpy as np

# Output side in face measures at margin 0.2 (see the module docstring for the measurement).
ALIGNED_SIDE_PER_FACE_MEASURE = 3.2
# The output centre lies this many face measures below the eyes' centre.
EYES_ABOVE_CENTRE = 0.34
# A face measure below this many source pixels means the landmarks are degenerate (all in one spot).
MIN_FACE_MEASURE_PX = 2.0


def check_landmarks(landmarks) -> np.ndarray | None:
    """float32[5, 2] finite landmarks, or None when ``landmarks`` is None or unusable (NaN, collapsed).

    Raises:
        ValueError: ``landmarks`` is not None and not 10 numbers (a detector bug, never bad luck).
    """
    if landmarks is None:
        return None
    marks = np.asarray(landmarks, dtype=np.float32)
    if marks.size != 10:
        raise ValueError(f'face landmarks must be float[5, 2] (x, y in source pixels), got shape {marks.shape}')
    marks = marks.reshape(5, 2)
    if not np.all(np.isfinite(marks)):
        return None
    return marks


def face_measure(landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(eyes' centre float64[2], eye-line angle in radians (image axes, y down), face measure in pixels)."""
    marks = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    right_eye, left_eye = marks[0], marks[1]
    eyes = (right_eye + left_eye) / 2.0
    mouth = (marks[3] + marks[4]) / 2.0
    eye_line = left_eye - right_eye
    angle = float(np.arctan2(eye_line[1], eye_line[0]))
    measure = max(float(np.hypot(*eye_line)), float(np.hypot(*(mouth - eyes))))
    return eyes, angle, measure


def aligned_transform(landmarks, margin: float, width: int, height: int) -> np.ndarray | None:
    """The affine map source pixels -> aligned ``width`` x ``height`` crop, or None (no usable landmarks).

    Args:
        landmarks: float[5, 2] source pixels (see module docstring) or None.
        margin: the crop margin, 0..2, with the square crop's meaning (0.2 = the default framing).
        width, height: the model's input size in pixels.
    Returns:
        float64[2, 3] matrix M with ``[u, v] = M @ [x, y, 1]`` (for ``cv2.warpAffine(src, M, (width, height))``).
    """
    return eyes_level_transform(landmarks, ALIGNED_SIDE_PER_FACE_MEASURE * (1.0 + margin) / 1.2,
                                EYES_ABOVE_CENTRE, width, height)


def eyes_level_transform(landmarks, side_measures: float, centre_below_eyes: float, width: int,
                         height: int) -> np.ndarray | None:
    """The affine map source pixels -> a ``width`` x ``height`` crop with the eyes level, or None (no usable
    landmarks): the output side covers ``side_measures`` face measures, centred ``centre_below_eyes`` face
    measures below the eyes' centre (perpendicular to the eye line). Also the face embedding's crop."""
    marks = check_landmarks(landmarks)
    if marks is None:
        return None
    eyes, angle, measure = face_measure(marks)
    if measure < MIN_FACE_MEASURE_PX:
        return None
    side = side_measures * measure   # source pixels
    cos, sin = np.cos(angle), np.sin(angle)
    # the crop centre: "down" the face (perpendicular to the eye line)
    centre = eyes + centre_below_eyes * measure * np.array([-sin, cos])
    scale_x, scale_y = width / side, height / side
    # rotate by -angle about the centre, scale, then move the centre to the middle of the output
    rotation = np.array([[cos, sin], [-sin, cos]])
    linear = np.diag([scale_x, scale_y]) @ rotation
    offset = np.array([width / 2.0, height / 2.0]) - linear @ centre
    return np.hstack([linear, offset[:, None]])
