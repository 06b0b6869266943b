"""Plain data types that flow through the ROS-free pipeline (no ROS imports here).

Coordinates are pixels of the full-resolution source image; boxes are (x, y, w, h) floats with
(x, y) the top-left corner. Probabilities are float32 arrays in the model's label order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One face found by a detector.

    box: (x, y, w, h) in source-image pixels. score: detector confidence 0..1.
    landmarks: float32[5, 2] (right eye, left eye, nose, right mouth, left mouth) or None.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None


# How a face was seen in the frame a FaceResult belongs to (FaceResult.tracking).
TRACKED = 'tracked'        # a published track, detected in this frame
TENTATIVE = 'tentative'    # a new track, detected but not yet published (fewer than min_hits detections)
COASTING = 'coasting'      # a published track not detected in this frame (its last smoothed state)
TRACKING_STATES: tuple[str, ...] = (TRACKED, TENTATIVE, COASTING)


@dataclass(frozen=True)
class HeadPose:
    """Head pose in degrees, camera optical frame (fer_ros.perception.head_pose states the convention):
    yaw + = the face points toward the image's right, pitch + = up, roll + = clockwise in the image.
    scale: pixels per eye distance of the fit; residual: RMS landmark misfit in eye distances."""

    yaw: float
    pitch: float
    roll: float
    scale: float = 0.0
    residual: float = 0.0


@dataclass
class FaceResult:
    """A tracked face with its smoothed expression, ready to publish (``tracking`` TRACKED), or one the
    command mapper weighs besides the published ones (TENTATIVE, COASTING; see fer_ros.hri.commands).

    The attention and identity fields are set by the Pipeline after tracking (their defaults describe a
    face that may command: what a bare tracker or a test builds)."""

    face_id: str                      # stable while tracked, e.g. "f3"
    box: tuple[float, float, float, float]
    expression: str                   # argmax of `probabilities`, canonical label word
    confidence: float                 # probabilities[argmax], 0..1
    probabilities: np.ndarray         # float32[K], smoothed, sums to 1, model label order
    raw_probabilities: np.ndarray     # float32[K], this frame's classifier output
    valence: float                    # -1..1 (labels.CIRCUMPLEX weighted by probabilities)
    arousal: float                    # -1..1
    detection_score: float            # 0..1
    tracking: str = TRACKED           # TRACKED | TENTATIVE | COASTING
    landmarks: np.ndarray | None = None   # float32[5, 2] of this frame's detection (detector order) or None
    face_points: np.ndarray | None = None  # float32[68, 2] face-api landmarks (fer_ros.perception.landmarks) or None
    head_pose: HeadPose | None = None     # None: no landmarks
    attending: bool = True            # facing the camera, big and sharp enough (fer_ros.perception.head_pose)
    attention: str = ''               # why not attending ('' when attending), e.g. 'yaw 77 > 30'
    person_id: str = ''               # fer_ros.hri.people: 'op1' enrolled, 'p3' anonymous, '' unknown
    person_name: str = ''             # the enrolled name, else ''
    may_command: bool = True          # this face's non-STOP expressions count for commands


@dataclass(frozen=True)
class Command:
    """An HRI command decided by the command mapper."""

    command: str                      # e.g. STOP, PAUSE, CONFIRM, HOLD
    priority: int                     # 0..255, higher wins (STOP highest)
    source_face_id: str = ''
    expression: str = ''
    confidence: float = 0.0
    heartbeat: bool = False           # True: periodic repeat of the current command
    stamp: float = 0.0                # seconds (the frame stamp or clock time that produced it)


@dataclass
class FrameResult:
    """Everything the pipeline computed for one frame."""

    stamp: float                      # seconds, copied from the input
    labels: tuple[str, ...]           # class order of every probabilities array
    faces: list[FaceResult] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)   # commands to publish for this frame
    timing_ms: dict[str, float] = field(default_factory=dict)  # detect, preprocess, infer, track, total
    num_detections: int = 0           # raw detections this frame (faces holds confirmed tracks only)
    detect_mode: str = 'full'         # 'full': whole-frame detection; 'roi': only around the tracked faces
    camera: str = ''                  # the frame's camera (header frame_id)
    skipped: str = ''                 # '' = processed; else why not (fer_ros.hri.stamps.SKIP_REASONS)
    new_timeline: bool = False        # the camera's clock jumped: its tracks were reset before this frame
    scan_error: str = ''              # a background full scan that ended since the last frame failed: why
