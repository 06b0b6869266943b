"""Head pose from face landmarks, and whether a face is attending (may command the robot).

Pose: a scaled-orthographic (weak-perspective) fit of a generic 3D face (``FACE_MODEL_68``: ten points
of face-api's 68 landmarks, fer_ros.perception.landmarks; ``FACE_MODEL_5`` with the detector's five
points when that network is not installed) to the landmarks: the 2x3 linear map that best projects the
model's points onto the landmarks (least squares, both centred), made a rotation by its nearest
orthonormal rows (SVD) and completed by their cross product. Weak perspective needs no camera
intrinsics and is accurate while the face's depth (~10 cm) is
small against its distance from the camera (a robot's user at 0.5 m and more). Landmarks tell a face
turned away from one looking at the camera; they are not a head tracker: beyond |yaw| ~60 degrees
the far side of a profile is guessed by the networks. The detector's five points do not follow an
in-plane rotation (their roll stays near 0 on a tilted head; bench-people measures it): without the
landmark network roll is not reliable, yaw and pitch are.

Angles (degrees) in the camera's optical frame (x right, y down, z forward, REP-103 ``_optical``), of
the direction the face points (out of the face, through the nose): all three are 0 for a face looking
straight into the camera, upright.
- yaw: + when the face points toward the image's right (the person turns to their own left), -180..180;
- pitch: + when the face points up, -90..90;
- roll: + when the head tilts clockwise as seen in the image (its top toward the image's right), -180..180.

Attention (``judge_attention``): a face attends when |yaw| <= max_yaw_deg, |pitch| <= max_pitch_deg,
its box is at least min_face_px on its shorter side and its sharpness (variance of the Laplacian of the
face box as a 64x64 gray image) is at least min_sharpness. A face without landmarks (Haar) has no pose
and attends only when ``attend_without_pose`` says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from fer_ros.core.types import HeadPose
from fer_ros.core.validate import check_fields, setting
from fer_ros.perception.align import check_landmarks

# A generic face in units of the distance between the eye centres (IOD, ~63 mm), head frame = the
# camera's optical frame for a face looking into the camera: x toward the image's right, y down, z away
# from the camera; origin between the eyes. In-plane layout (x, y): the median, made left-right symmetric,
# of face-api's 68 landmarks over 40 roughly frontal faces of the benchmark photos (bench-people), so a
# face posed like them reads 0; depth (z): anthropometric averages (nose tip ~30 mm in front of the eye
# centres, subnasale ~19, nasion ~9, mouth corners ~3, chin ~6; outer eye corners ~13 mm behind), the
# part of the model that sets the angles' scale.
FACE_MODEL_68 = np.array([
    [-0.50, 0.00, 0.00],     # right eye centre (the person's right: image left), mean of points 36-41
    [0.50, 0.00, 0.00],      # left eye centre, mean of 42-47
    [-0.68, -0.01, 0.20],    # 36 right eye outer corner
    [0.68, -0.01, 0.20],     # 45 left eye outer corner
    [0.00, 0.04, -0.15],     # 27 nasion (top of the nose bridge)
    [0.00, 0.62, -0.50],     # 30 nose tip
    [0.00, 0.77, -0.30],     # 33 subnasale
    [-0.45, 1.05, -0.05],    # 48 right mouth corner
    [0.45, 1.05, -0.05],     # 54 left mouth corner
    [0.00, 1.80, -0.10],     # 8 chin
])
# The same face at the detector's five points (eye centres, nose tip, mouth corners).
FACE_MODEL_5 = FACE_MODEL_68[[0, 1, 5, 7, 8]]
CROP_SIDE = 64               # sharpness is measured on the face box resized to this square (gray)


def pose_points(points) -> np.ndarray | None:
    """float64[K, 2] image points matching FACE_MODEL_68 (from 68 landmarks) or FACE_MODEL_5 (from the
    detector's five), or None when ``points`` is None or not finite."""
    if points is None:
        return None
    p = np.asarray(points, np.float64)
    if p.shape == (68, 2):
        p = np.vstack([p[36:42].mean(axis=0), p[42:48].mean(axis=0), p[[36, 45, 27, 30, 33, 48, 54, 8]]])
    else:
        marks = check_landmarks(points)
        if marks is None:
            return None
        p = marks.astype(np.float64)
    return p if np.all(np.isfinite(p)) else None


def estimate_head_pose(landmarks) -> HeadPose | None:
    """HeadPose of a face from its landmarks: float[68, 2] (face-api's, preferred: they follow an in-plane
    rotation) or float[5, 2] (the detector's order: right eye, left eye, nose tip, right mouth corner, left
    mouth corner), source pixels; None when there are none usable."""
    image = pose_points(landmarks)
    if image is None:
        return None
    face = FACE_MODEL_68 if len(image) == len(FACE_MODEL_68) else FACE_MODEL_5
    image = image - image.mean(axis=0)
    model = face - face.mean(axis=0)
    projection, *_ = np.linalg.lstsq(model, image, rcond=None)      # [3, 2]: image ~ model @ projection
    u, s, vt = np.linalg.svd(projection.T, full_matrices=False)      # [2, 3] = u diag(s) vt
    scale = float(s.mean())
    if not scale > 1e-6:
        return None
    rows = u @ vt                                                     # nearest orthonormal rows
    rotation = np.vstack([rows, np.cross(rows[0], rows[1])])          # columns: head axes in the camera
    residual = float(np.sqrt(np.mean((model @ rows.T * scale - image) ** 2)) / scale)
    forward = -rotation[:, 2]                                         # out of the face, toward the camera
    yaw = math.degrees(math.atan2(forward[0], -forward[2]))
    pitch = math.degrees(math.atan2(-forward[1], math.hypot(forward[0], forward[2])))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return HeadPose(yaw, pitch, roll, scale, residual)


def sharpness(bgr: np.ndarray, box) -> float:
    """Variance of the Laplacian of the face box, resized to CROP_SIDE x CROP_SIDE gray (independent of
    the face's size; a sharp face in a camera frame reads ~100-1000, a strongly blurred one < 20)."""
    x, y, w, h = (int(round(v)) for v in box)
    height, width = bgr.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    gray = cv2.cvtColor(bgr[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (CROP_SIDE, CROP_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small, cv2.CV_32F).var())


@dataclass(frozen=True)
class AttentionConfig:
    """When a face counts as attending (facing the camera, big and sharp enough to judge).

    max_yaw_deg / max_pitch_deg: the largest |yaw| / |pitch| of an attending face, 0..90.
    min_face_px: the face box's shorter side must be at least this many source pixels.
    min_sharpness: the face's sharpness (``sharpness``) must be at least this (0 = not checked).
    attend_without_pose: whether a face without landmarks (Haar detector) attends (its pose is unknown).
    hysteresis_deg: a face attending in its previous frame keeps attending up to this many degrees past
        the angle limits (the five landmarks' pose wobbles by a few degrees from frame to frame).
    """

    max_yaw_deg: float = setting(30.0, low=0.0, high=90.0)
    max_pitch_deg: float = setting(25.0, low=0.0, high=90.0)
    min_face_px: float = setting(40.0, low=0.0, high=4096.0)
    min_sharpness: float = setting(15.0, low=0.0, high=100000.0)
    attend_without_pose: bool = False
    hysteresis_deg: float = setting(5.0, low=0.0, high=45.0)

    def __post_init__(self) -> None:
        check_fields(self)


def judge_attention(pose: HeadPose | None, box, face_sharpness: float, config: AttentionConfig,
                    was_attending: bool | None = None) -> tuple[bool, str]:
    """(attending, why not: '' when attending, else the first failed rule, e.g. 'yaw 52 > 30').
    was_attending: the face's verdict in its previous frame (None: a new face); True widens the angle
    limits by ``hysteresis_deg``."""
    side = min(float(box[2]), float(box[3]))
    if side < config.min_face_px:
        return False, f'face {side:.0f} px < {config.min_face_px:g}'
    if config.min_sharpness > 0 and face_sharpness < config.min_sharpness:
        return False, f'sharpness {face_sharpness:.0f} < {config.min_sharpness:g}'
    if pose is None:
        return (True, '') if config.attend_without_pose else (False, 'no landmarks (pose unknown)')
    slack = config.hysteresis_deg if was_attending else 0.0
    if abs(pose.yaw) > config.max_yaw_deg + slack:
        return False, f'|yaw| {abs(pose.yaw):.0f} > {config.max_yaw_deg + slack:g}'
    if abs(pose.pitch) > config.max_pitch_deg + slack:
        return False, f'|pitch| {abs(pose.pitch):.0f} > {config.max_pitch_deg + slack:g}'
    return True, ''
