"""Face tracking: stable face ids across frames, and per-face smoothing of the expression.

Each processed frame brings detections (boxes) and the classifier's probabilities for each of them.
The tracker associates detections with the tracks of the previous frames, so a face keeps its id
("f1", "f2", ...) while it stays in view, and each track smooths its own probabilities
(``fer_ros.perception.smoothing``) so a one-frame misclassification does not change the published expression.

Association (per frame, greedy, cheapest pair first):

- a detection may continue a track when their boxes overlap with IoU >= ``iou_threshold``, OR when
  their centres are within ``max_center_distance`` x the mean box size (size = sqrt(w * h)) and their
  sizes differ by at most ``max_size_ratio`` (the distance gate keeps a fast-moving face whose boxes no
  longer overlap; the size gate stops a small background face from taking over a large foreground one);
- among allowed pairs the cost is ``(1 - IoU) + normalised centre distance``; pairs are taken cheapest
  first (ties: confirmed before tentative tracks, then older tracks first), each track and detection
  at most once. Greedy is exact enough for the handful of faces a robot camera sees and needs no scipy.

Track life cycle (every timing in seconds of frame stamps, so a slow node keeps the same behaviour):

- a new detection starts a *tentative* track with a fresh id; ids are never reused by a tracker,
  not even after ``reset()``;
- a face a whole-frame scan of an earlier frame found (the node's background scan) enters between
  frames (``add_candidates``) as a tentative track whose first hit is the scan;
- a tentative track is *confirmed* (published) once it has been detected ``min_hits`` times (a count
  of independent detections, the filter against one-off false detections);
- a track, tentative or confirmed, survives frames without a match while it was matched at most
  ``coast_s`` seconds ago (the face is briefly not detected: blur, a hand, turning the head), keeping
  its id and smoothing state; it is dropped at the first frame that does not match it more than
  ``coast_s`` after its last match. (When frames stop altogether and the face is matched in the first
  frame back, it keeps its id; its smoothing then starts afresh, since the frame weighs
  1 - exp(-dt / tau_s), almost 1.)

Two views of a frame: ``update`` returns the *published* faces (confirmed, detected in this frame);
``command_faces`` adds what the command mapper weighs besides them (fer_ros.hri.commands): tentative
tracks, and confirmed tracks *coasting* (not detected in this frame); a track not detected in the frame
gives its last smoothed state. A missed detection therefore never interrupts a command's evidence.

Stamps: ``update`` uses the stamp for ``coast_s`` and the smoothing's time constant. Frames reach the
tracker in stamp order per camera (fer_ros.hri.stamps); a stamp older than a track's last one counts
as no time passed.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fer_ros.core.types import COASTING, TENTATIVE, TRACKED, Detection, FaceResult
from fer_ros.core.validate import check_fields, setting
from fer_ros.perception.smoothing import Smoother, SmoothingConfig, circumplex_matrix, circumplex_point, make_smoother


@dataclass(frozen=True)
class TrackerConfig:
    """How detections are associated with tracks and when tracks are published and dropped.

    iou_threshold: IoU (0..1) at or above which a detection may continue a track (0: any overlap).
    max_center_distance: centre distance, as a fraction of the mean box size, within which a detection
        may continue a track even without overlap (0 disables this gate).
    min_hits: detections before a track is published (1 = immediately).
    coast_s: a track survives frames without a detection for this many seconds (by frame stamps) after
        its last match; meanwhile a confirmed one coasts (its last state keeps feeding the command
        mapper). 0: dropped at the first frame without a match.
    max_size_ratio: for the centre-distance gate, the larger box may be at most this many times the
        smaller one (in sqrt(area)).
    """

    iou_threshold: float = setting(0.3, low=0.0, high=1.0)
    max_center_distance: float = setting(0.5, low=0.0)
    min_hits: int = setting(2, low=1, high=100)
    coast_s: float = setting(0.5, low=0.0, high=10.0)
    max_size_ratio: float = setting(2.0, low=1.0)

    def __post_init__(self) -> None:
        check_fields(self)


class _Track:
    """One tracked face (internal)."""

    __slots__ = ('number', 'box', 'smoother', 'hits', 'misses', 'confirmed', 'last_seen',
                 'smoothed', 'raw', 'score', 'landmarks')

    def __init__(self, number: int, box: np.ndarray, smoother: Smoother, stamp: float) -> None:
        self.number = number
        self.box = box
        self.smoother = smoother
        self.hits = 0
        self.misses = 0                 # frames since the last match
        self.confirmed = False
        self.last_seen = stamp
        self.smoothed: np.ndarray | None = None
        self.raw: np.ndarray | None = None
        self.score = 0.0
        self.landmarks: np.ndarray | None = None

    @property
    def face_id(self) -> str:
        return f'f{self.number}'


class FaceTracker:
    """Associates detections over frames and smooths each face's probabilities.

    Args:
        config: association and life-cycle settings.
        smoothing: per-track probability smoothing.
        labels: the model's class order (canonical expression words), length K; every probabilities
            array given to ``update`` is in this order.
    """

    def __init__(self, config: TrackerConfig, smoothing: SmoothingConfig, labels: tuple[str, ...],
                 numbers=None) -> None:
        if not isinstance(config, TrackerConfig):
            raise ValueError(f'config must be a TrackerConfig, got {type(config).__name__}')
        if not isinstance(smoothing, SmoothingConfig):
            raise ValueError(f'smoothing must be a SmoothingConfig, got {type(smoothing).__name__}')
        self.config = config
        self.smoothing = smoothing
        self.labels = tuple(labels)
        if not self.labels:
            raise ValueError('labels must not be empty')
        self._coords = circumplex_matrix(self.labels)  # validates the labels once, not per frame
        self._tracks: list[_Track] = []
        # numbers: an iterator of track numbers shared by several trackers (one per camera) keeps ids unique
        self._numbers = numbers if numbers is not None else itertools.count(1)
        # Optional per-face hooks (the Pipeline's neutral baselines): observe(face_id, raw float32[K],
        # stamp) sees every classified face; correct(face_id, smoothed float32[K]) -> float32[K]
        # changes what is published (expression, confidence, valence/arousal follow it).
        self.observe: Callable[[str, np.ndarray, float], None] | None = None
        self.correct: Callable[[str, np.ndarray], np.ndarray] | None = None
        self._command_faces: list[FaceResult] = []

    @property
    def face_ids(self) -> list[str]:
        """Ids of the tracks alive now (confirmed and tentative)."""
        return [t.face_id for t in self._tracks]

    def active_boxes(self) -> list[tuple[float, float, float, float]]:
        """Last boxes (x, y, w, h) of the tracks alive now (confirmed and tentative, possibly missed for
        up to ``coast_s``), in id creation order. The Pipeline searches around these boxes between
        full-frame detections."""
        boxes = [t.box for t in sorted(self._tracks, key=lambda t: t.number)]
        return [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in boxes]

    @property
    def lost_any(self) -> bool:
        """A live track was not found in the last frame ``update`` saw (the ROI search lost it)."""
        return any(t.misses > 0 for t in self._tracks)

    def reset(self) -> None:
        """Drop every track. Ids keep counting: an id is never given to two faces by one tracker."""
        self._tracks.clear()
        self._command_faces = []

    def add_candidates(self, detections: list[Detection], stamp: float) -> int:
        """Merge faces a whole-frame scan of an earlier frame (at ``stamp``) found, between two ``update`` calls
        (the Pipeline's background scan; fer_ros.perception.full_scan).

        A face a live track claims (the association gate against the track's current box) only moves that
        track's box, and only when the track missed its last frame and the scan is newer than its last
        sighting (the ROI search lost it; the scan says where to look). Every other face becomes a
        tentative track whose first sighting is the scan: one hit, no probabilities yet; it is published
        once ``update`` matches it often enough to reach ``min_hits`` (so with the default 2, on the next
        frame that sees it) and dropped when unmatched for longer than ``coast_s`` like any track. Returns
        the number of new tracks.
        """
        stamp = float(stamp)
        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        claimed = set()
        for ti, di in self._associate(boxes):
            claimed.add(di)
            track = self._tracks[ti]
            if track.misses > 0 and stamp > track.last_seen:
                track.box = boxes[di]
        added = 0
        for di, detection in enumerate(detections):
            if di in claimed:
                continue
            track = _Track(next(self._numbers), boxes[di], make_smoother(self.smoothing, len(self.labels)), stamp)
            track.hits, track.score = 1, float(detection.score)
            self._tracks.append(track)
            added += 1
        return added

    def update(self, detections: list[Detection], probabilities: np.ndarray, stamp: float) -> list[FaceResult]:
        """Add one frame.

        Args:
            detections: this frame's faces; ``detections[i]`` goes with ``probabilities[i]``.
            probabilities: float32[N, K] finite class probabilities (rows sum to 1) in ``self.labels``
                order; N = len(detections) (an empty array of any shape is accepted when N = 0).
            stamp: frame time in seconds.
        Returns:
            FaceResult for each confirmed track matched in this frame (``tracking`` TRACKED), in id
            creation order (f2 before f10), with smoothed probabilities, expression, confidence,
            valence, arousal. ``command_faces()`` has these and the tentative and coasting ones.
        Raises:
            ValueError: probabilities do not have shape (len(detections), len(labels)) or are not
                finite; the tracker is left as it was (nothing of the frame is applied).
        """
        probs = self._check_probabilities(detections, probabilities)
        stamp = float(stamp)

        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        matches = self._associate(boxes)
        matched_dets = {di for _, di in matches}
        matched = [self._tracks[ti] for ti, _ in matches]
        for track, (_, di) in zip(matched, matches):
            self._hit(track, detections[di], boxes[di], probs[di], stamp)
        # Tracks this frame does not match survive while their last match is at most coast_s old.
        unmatched = [t for t in self._tracks if all(t is not m for m in matched)]
        for track in unmatched:
            track.misses += 1
        self._tracks = matched + [t for t in unmatched if stamp - t.last_seen <= self.config.coast_s]
        missed = self._tracks[len(matched):]

        for di in range(len(detections)):
            if di in matched_dets:
                continue
            track = _Track(next(self._numbers), boxes[di], make_smoother(self.smoothing, len(self.labels)), stamp)
            self._hit(track, detections[di], boxes[di], probs[di], stamp)
            self._tracks.append(track)
            matched.append(track)

        by_id = sorted(matched, key=lambda t: t.number)
        published = [self._result(t, TRACKED) for t in by_id if t.confirmed]
        # (a face a background scan added has no probabilities until a frame matches it)
        others = sorted([t for t in by_id if not t.confirmed] + [t for t in missed if t.smoothed is not None],
                        key=lambda t: t.number)
        self._command_faces = published + [self._result(t, COASTING if t.confirmed else TENTATIVE) for t in others]
        return published

    def command_faces(self) -> list[FaceResult]:
        """What the command mapper weighs after the last ``update``: every live track. The published
        faces (TRACKED) first, then in id order the tentative tracks (TENTATIVE, detected in that frame
        or not) and the confirmed tracks not detected in it (COASTING); a track not detected in the frame
        gives its last smoothed state (it is within ``coast_s`` of its last match)."""
        return list(self._command_faces)

    # --- internals -------------------------------------------------------------------------------

    def _check_probabilities(self, detections: list[Detection], probabilities: np.ndarray) -> np.ndarray:
        n, k = len(detections), len(self.labels)
        probs = np.asarray(probabilities, dtype=np.float32)
        if n == 0 and probs.size == 0:
            return np.zeros((0, k), dtype=np.float32)
        if probs.shape != (n, k):
            raise ValueError(f'probabilities must have shape ({n}, {k}) for {n} detections and {k} labels, '
                             f'got {probs.shape}')
        if not np.all(np.isfinite(probs)):
            raise ValueError(f'the classifier returned non-finite probabilities for {n} face(s): {probs.tolist()}')
        return probs

    def _hit(self, track: _Track, detection: Detection, box: np.ndarray, p: np.ndarray, stamp: float) -> None:
        track.box = box
        track.landmarks = detection.landmarks
        track.hits += 1
        track.misses = 0
        track.last_seen = max(track.last_seen, stamp)
        track.raw = p.copy()
        if self.observe is not None:
            self.observe(track.face_id, p, stamp)
        track.smoothed = track.smoother.update(p, stamp)
        track.score = float(detection.score)
        if track.hits >= self.config.min_hits:
            track.confirmed = True

    def _associate(self, boxes: np.ndarray) -> list[tuple[int, int]]:
        """Greedy gated assignment; returns (track index, detection index) pairs."""
        if not self._tracks or len(boxes) == 0:
            return []
        cfg = self.config
        track_boxes = np.array([t.box for t in self._tracks], dtype=np.float64)
        iou = box_iou(track_boxes, boxes)
        size_t = np.sqrt(np.clip(track_boxes[:, 2] * track_boxes[:, 3], 1e-9, None))[:, None]
        size_d = np.sqrt(np.clip(boxes[:, 2] * boxes[:, 3], 1e-9, None))[None, :]
        centre_t = track_boxes[:, :2] + track_boxes[:, 2:] / 2
        centre_d = boxes[:, :2] + boxes[:, 2:] / 2
        dist = np.linalg.norm(centre_t[:, None, :] - centre_d[None, :, :], axis=2) / ((size_t + size_d) / 2)
        ratio = np.maximum(size_t / size_d, size_d / size_t)
        gate = ((iou > 0) & (iou >= cfg.iou_threshold)) | (
            (dist <= cfg.max_center_distance) & (ratio <= cfg.max_size_ratio))
        cost = (1.0 - iou) + dist
        pairs = sorted(zip(*np.nonzero(gate)),
                       key=lambda ij: (cost[ij], not self._tracks[ij[0]].confirmed, self._tracks[ij[0]].number))
        used_t: set[int] = set()
        used_d: set[int] = set()
        matches = []
        for ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(int(ti))
            used_d.add(int(di))
            matches.append((int(ti), int(di)))
        return matches

    def _result(self, track: _Track, tracking: str) -> FaceResult:
        if track.smoothed is None or track.raw is None:   # a track is born from a classified detection
            raise RuntimeError(f'track {track.face_id} has no classification')
        smoothed = track.smoothed if self.correct is None else self.correct(track.face_id, track.smoothed)
        best = int(np.argmax(smoothed))
        valence, arousal = circumplex_point(smoothed, self._coords)
        x, y, w, h = (float(v) for v in track.box)
        return FaceResult(
            face_id=track.face_id,
            box=(x, y, w, h),
            expression=self.labels[best],
            confidence=float(smoothed[best]),
            probabilities=smoothed.copy(),
            raw_probabilities=track.raw.copy(),
            valence=valence,
            arousal=arousal,
            detection_score=track.score,
            tracking=tracking,
            landmarks=track.landmarks,
        )


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` float[M, 4] and ``b`` float[N, 4], (x, y, w, h) -> float64[M, N] in 0..1."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None, :]) - np.maximum(a[:, 0][:, None], b[:, 0][None, :]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None, :]) - np.maximum(a[:, 1][:, None], b[:, 1][None, :]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
