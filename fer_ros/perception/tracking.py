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

Track life cycle:

- a new detection starts a *tentative* track with a fresh id; ids are never reused by a tracker,
  not even after ``reset()``;
- a face a whole-frame scan of an earlier frame found (the node's background scan) enters between
  frames (``add_candidates``) as a tentative track whose first hit is the scan;
- a tentative track is *confirmed* (published) after ``min_hits`` consecutive matched frames; a
  tentative track that misses a frame is dropped (a spurious detection never gets published);
- a confirmed track survives up to ``max_misses`` consecutive frames without a match (the face is
  briefly not detected: blur, turning the head) and keeps its id and smoothing state when matched
  again; it is dropped at the next miss, or when it has not been matched for ``max_age_s`` seconds
  of stamps (frames may stop arriving altogether, and a face seen again much later is a new track).

Stamps: ``update`` uses the stamp only for ``max_age_s``. A frame whose stamp is older than the
previous one (out of order) is associated like any other frame; its age check sees a negative
elapsed time and expires nothing.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from fer_ros.core.types import Detection, FaceResult
from fer_ros.core.validate import check_fields, setting
from fer_ros.perception.smoothing import Smoother, SmoothingConfig, circumplex_matrix, circumplex_point, make_smoother


@dataclass(frozen=True)
class TrackerConfig:
    """How detections are associated with tracks and when tracks are published and dropped.

    iou_threshold: IoU (0..1) at or above which a detection may continue a track (0: any overlap).
    max_center_distance: centre distance, as a fraction of the mean box size, within which a detection
        may continue a track even without overlap (0 disables this gate).
    min_hits: consecutive matched frames before a track is published (1 = immediately).
    max_misses: consecutive unmatched frames a confirmed track survives (0 = dropped at the first miss).
    max_age_s: a track not matched for this many seconds (by frame stamps) is dropped.
    max_size_ratio: for the centre-distance gate, the larger box may be at most this many times the
        smaller one (in sqrt(area)).
    """

    iou_threshold: float = setting(0.3, low=0.0, high=1.0)
    max_center_distance: float = setting(0.5, low=0.0)
    min_hits: int = setting(2, low=1, high=100)
    max_misses: int = setting(5, low=0, high=1000)
    max_age_s: float = setting(2.0, low=0.0, low_open=True)
    max_size_ratio: float = setting(2.0, low=1.0)

    def __post_init__(self) -> None:
        check_fields(self)


class _Track:
    """One tracked face (internal)."""

    __slots__ = ('number', 'box', 'smoother', 'hits', 'misses', 'confirmed', 'last_seen',
                 'smoothed', 'raw', 'score')

    def __init__(self, number: int, box: np.ndarray, smoother: Smoother, stamp: float) -> None:
        self.number = number
        self.box = box
        self.smoother = smoother
        self.hits = 0
        self.misses = 0
        self.confirmed = False
        self.last_seen = stamp
        self.smoothed: np.ndarray | None = None
        self.raw: np.ndarray | None = None
        self.score = 0.0

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
        self.observe = None
        self.correct = None

    @property
    def face_ids(self) -> list[str]:
        """Ids of the tracks alive now (confirmed and tentative)."""
        return [t.face_id for t in self._tracks]

    def active_boxes(self, stamp: float | None = None) -> list[tuple[float, float, float, float]]:
        """Last boxes (x, y, w, h) of the tracks alive now: confirmed ones (possibly missed for up to
        ``max_misses`` frames) and tentative ones (seen in the last frame), in id creation order.

        The Pipeline searches around these boxes between full-frame detections. stamp: when given,
        tracks that the next ``update`` at this stamp would expire (older than ``max_age_s``) are left out.
        """
        return [tuple(float(v) for v in t.box) for t in sorted(self._tracks, key=lambda t: t.number)
                if stamp is None or float(stamp) - t.last_seen <= self.config.max_age_s]

    def reset(self) -> None:
        """Drop every track. Ids keep counting: an id is never given to two faces by one tracker."""
        self._tracks.clear()

    def add_candidates(self, detections: list[Detection], stamp: float) -> int:
        """Merge faces a whole-frame scan of an earlier frame (at ``stamp``) found, between two ``update`` calls
        (the Pipeline's background scan; fer_ros.perception.full_scan).

        A face a live track claims (the association gate against the track's current box) only moves that
        track's box, and only when the track missed its last frame and the scan is newer than its last
        sighting (the ROI search lost it; the scan says where to look). Every other face becomes a
        tentative track whose first sighting is the scan: one hit, no probabilities yet; it is published
        once ``update`` matches it often enough to reach ``min_hits`` (so with the default 2, on the next
        frame that sees it) and dropped at its first miss like any tentative track. Returns the number of
        new tracks.
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
            probabilities: float32[N, K] class probabilities (rows sum to 1) in ``self.labels`` order;
                N = len(detections) (an empty array of any shape is accepted when N = 0).
            stamp: frame time in seconds.
        Returns:
            FaceResult for each confirmed track matched in this frame, in id creation order
            (f2 before f10), with smoothed probabilities, expression, confidence, valence, arousal.
        Raises:
            ValueError: probabilities do not have shape (len(detections), len(labels)).
        """
        probs = self._check_probabilities(detections, probabilities)
        stamp = float(stamp)
        cfg = self.config

        # Frames may stop (camera paused): a face seen again after max_age_s is a new track.
        self._tracks = [t for t in self._tracks if stamp - t.last_seen <= cfg.max_age_s]

        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        matches = self._associate(boxes)
        matched_tracks = {ti for ti, _ in matches}
        matched_dets = {di for _, di in matches}

        published: list[_Track] = []
        for ti, di in matches:
            track = self._tracks[ti]
            self._hit(track, boxes[di], detections[di].score, probs[di], stamp)
            if track.confirmed:
                published.append(track)

        survivors = []
        for ti, track in enumerate(self._tracks):
            if ti not in matched_tracks:
                track.misses += 1
                # Tentative tracks die on their first miss; confirmed ones tolerate max_misses misses.
                if not track.confirmed or track.misses > cfg.max_misses:
                    continue
            survivors.append(track)
        self._tracks = survivors

        for di in range(len(detections)):
            if di in matched_dets:
                continue
            track = _Track(next(self._numbers), boxes[di], make_smoother(self.smoothing, len(self.labels)), stamp)
            self._hit(track, boxes[di], detections[di].score, probs[di], stamp)
            self._tracks.append(track)
            if track.confirmed:
                published.append(track)

        published.sort(key=lambda t: t.number)
        return [self._result(t) for t in published]

    # --- internals -------------------------------------------------------------------------------

    def _check_probabilities(self, detections: list[Detection], probabilities: np.ndarray) -> np.ndarray:
        n, k = len(detections), len(self.labels)
        probs = np.asarray(probabilities, dtype=np.float32)
        if n == 0 and probs.size == 0:
            return np.zeros((0, k), dtype=np.float32)
        if probs.shape != (n, k):
            raise ValueError(f'probabilities must have shape ({n}, {k}) for {n} detections and {k} labels, '
                             f'got {probs.shape}')
        return probs

    def _hit(self, track: _Track, box: np.ndarray, score: float, p: np.ndarray, stamp: float) -> None:
        track.box = box
        track.hits += 1
        track.misses = 0
        track.last_seen = max(track.last_seen, stamp)
        track.raw = p.copy()
        if self.observe is not None:
            self.observe(track.face_id, p, stamp)
        track.smoothed = track.smoother.update(p)
        track.score = float(score)
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

    def _result(self, track: _Track) -> FaceResult:
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
