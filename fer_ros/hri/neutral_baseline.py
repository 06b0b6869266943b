"""A person's own neutral face: per-face baselines that correct the classifier toward that person's rest.

Why: the FER2013 classifier reads some resting faces as an expression (the repository's cameraman is
"sad" at rest, which the default mapping turns into ASSIST). The operator asks the node to look at a
person's resting face for a few seconds (``request``); afterwards that face's probabilities are
corrected relative to it (``observe``, called for every classified face by the tracker).

The correction is a bounded prior shift in log space, applied to the face's smoothed probabilities
(what the command mapper reads). From the baseline b (the mean of the raw probability rows collected,
float[K]), each class k other than neutral gets a weight

    w_k = clip(log b_k - log b_neutral + log(neutral_lead), 0, max_shift)

and the smoothed probabilities p become p'_k = p_k * exp(-w_k) / Z (Z renormalises to 1). What it does:
- the resting face itself: every class that outweighed neutral at rest is scaled down until neutral
  leads it by ``neutral_lead`` (unless that needs more than ``max_shift``): the rest reads neutral;
- a class the resting face did not show (b_k well below b_neutral / neutral_lead) is untouched
  (w_k = 0), except for the renormalisation, which can only raise it;
- a class the resting face did show needs at most exp(max_shift) (4x by default) more odds against
  neutral than before to win: a real expression (apex probabilities are 0.6-1.0) still wins;
- neutral is never scaled down;
- STOP classes (scared, and every expression commands.yaml maps to STOP) are protected: whenever the
  face gives STOP evidence at their guard levels (each rule's min_confidence; the STOP probabilities,
  each in units of its guard level, add up to 1 or more: the mapper's own rule for starting STOP), no
  STOP class is scaled down in that frame, and
  since Z <= 1 they can only rise: a STOP expression at or above its threshold stays there, and a face
  whose winner is a STOP class keeps that winner. Below the guard level (no STOP evidence either way)
  a STOP class is corrected like the others, so a resting face that reads a little scared or angry
  can read neutral (and, once a STOP is latched, release it: the mapper keeps STOP down to
  min_confidence - hysteresis, which for a calibrated person's rest would otherwise never end).

Risks: calibrating on a face that is not at rest (smiling, talking) teaches that expression as the
person's rest, so their real smile later needs up to 4x more evidence (the bound keeps it possible);
a resting face that reads as a STOP class above its guard is not corrected for it (safety first).
Baselines are kept per track (face id) here and dropped with their track; fer_ros.hri.people attaches
each one to the track's *person* and installs it again (``install``) when that person comes back or,
enrolled, after a restart.

Not thread-safe by itself: the Pipeline calls it under the node's lock.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fer_ros.core.labels import NEUTRAL, SCARED
from fer_ros.core.validate import check_fields, check_range, field_limits, setting


@dataclass(frozen=True)
class NeutralBaselineConfig:
    """duration_s: default collection time of a calibration (seconds of frame stamps), 0.2..60.
    min_samples: classified frames a face needs in that window for a baseline, 1..1000.
    max_shift: bound of each class's log-space down-weighting (1.386 = a factor of 4), 0..5.
    neutral_lead: on the resting face, neutral ends at least this factor ahead of each corrected class, 1..4.
    """

    duration_s: float = setting(3.0, low=0.2, high=60.0)
    min_samples: int = setting(5, low=1, high=1000)
    max_shift: float = setting(math.log(4.0), low=0.0, high=5.0)
    neutral_lead: float = setting(1.5, low=1.0, high=4.0)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class _Collection:
    face_id: str | None             # None: every face seen in the window
    duration_s: float
    start: float | None = None      # stamp of the first frame after the request
    samples: dict[str, list[np.ndarray]] = field(default_factory=dict)   # face id -> raw rows


@dataclass(frozen=True)
class Baseline:
    """One face's calibration: the resting probabilities and the log-space weights derived from them."""

    face_id: str
    resting: np.ndarray             # float32[K], mean raw probabilities at rest (model label order)
    weights: np.ndarray             # float32[K], w_k >= 0 (0 for neutral)
    samples: int
    stamp: float                    # frame stamp the collection ended at


def baseline_weights(resting: np.ndarray, labels: tuple[str, ...], config: NeutralBaselineConfig) -> np.ndarray:
    """float32[K] weights w_k (see module docstring) for a resting distribution float[K] summing to 1."""
    rest = np.clip(np.asarray(resting, np.float64), 1e-6, 1.0)
    neutral = labels.index(NEUTRAL)
    raw = np.log(rest) - math.log(rest[neutral]) + math.log(config.neutral_lead)
    weights = np.clip(raw, 0.0, config.max_shift)
    weights[neutral] = 0.0
    return weights.astype(np.float32)


def apply_weights(probabilities: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """float32[K] probabilities -> float32[K]: p_k * exp(-w_k), renormalised to sum to 1."""
    shifted = np.asarray(probabilities, np.float64) * np.exp(-np.asarray(weights, np.float64))
    total = shifted.sum()
    if not total > 0:
        return np.asarray(probabilities, np.float32).copy()
    return (shifted / total).astype(np.float32)


class NeutralBaselines:
    """Per-face neutral baselines: collect on request, correct afterwards, clear on request.

    Args:
        config: collection and correction settings.
        labels: the model's class order; must contain 'neutral'.
        protected: STOP expression -> guard level (0..1): while the face's probability of any of them is
            at or above its guard, none of them is scaled down (see the module docstring).
    Raises:
        ValueError: no 'neutral' class in ``labels``.
    """

    def __init__(self, config: NeutralBaselineConfig, labels: tuple[str, ...],
                 protected: dict[str, float] | None = None) -> None:
        if not isinstance(config, NeutralBaselineConfig):
            raise ValueError(f'config must be a NeutralBaselineConfig, got {type(config).__name__}')
        if NEUTRAL not in labels:
            raise ValueError(f"neutral baselines need a '{NEUTRAL}' class; the model's labels are {labels}")
        self.config = config
        self.labels = tuple(labels)
        self.protected = {name: float(level) for name, level in (protected or {SCARED: 0.0}).items()}
        self._guards = [(self.labels.index(name), level) for name, level in self.protected.items()
                        if name in self.labels]
        self._baselines: dict[str, Baseline] = {}
        self._collection: _Collection | None = None
        self.last_result = ''          # what the last calibration did (for diagnostics)

    # --- requests (service callbacks, under the caller's lock) ----------------------------------
    def request(self, face_id: str | None = None, duration_s: float | None = None) -> str:
        """Start collecting for ``face_id`` (None or '' = every face seen) over ``duration_s`` seconds
        (None or 0 = config.duration_s) from the next frame on. Replaces a collection in progress.

        Returns: a one-line description. Raises: ValueError for a duration outside 0.2..60 s.
        """
        duration = float(duration_s) if duration_s else self.config.duration_s
        limits = field_limits(NeutralBaselineConfig, 'duration_s')
        check_range('calibration', 'duration_s', duration, limits.low, limits.high)
        self._collection = _Collection(face_id or None, duration, samples={})
        who = f'face {face_id}' if face_id else 'every face in view'
        return f'collecting the resting face of {who} for {duration:g} s'

    def clear(self, face_id: str | None = None) -> list[str]:
        """Forget the baseline of ``face_id`` (None or '' = all) and stop a collection for it.
        Returns the face ids whose baselines were removed."""
        if face_id:
            removed = [face_id] if self._baselines.pop(face_id, None) is not None else []
            if self._collection is not None and self._collection.face_id == face_id:
                self._collection = None
        else:
            removed = sorted(self._baselines)
            self._baselines.clear()
            self._collection = None
        return removed

    @property
    def collecting(self) -> bool:
        return self._collection is not None

    def baseline(self, face_id: str) -> Baseline | None:
        return self._baselines.get(face_id)

    def install(self, face_id: str, resting: np.ndarray, samples: int, stamp: float = 0.0) -> None:
        """Give ``face_id`` a baseline from a known resting distribution float[K] (a returning person's):
        the weights are derived from it with this config, as for a calibration."""
        resting = np.asarray(resting, np.float32)
        if resting.shape != (len(self.labels),):
            raise ValueError(f'a baseline needs {len(self.labels)} resting probabilities, got shape {resting.shape}')
        weights = baseline_weights(resting, self.labels, self.config)
        self._baselines[face_id] = Baseline(face_id, resting.copy(), weights, int(samples), float(stamp))

    # --- per frame (tracker) --------------------------------------------------------------------
    def observe(self, face_id: str, probabilities: np.ndarray, stamp: float) -> None:
        """Collect one face's raw probabilities (float32[K]) of a frame while a calibration for it runs."""
        collection = self._collection
        if collection is not None and (collection.face_id is None or collection.face_id == face_id):
            collection.samples.setdefault(face_id, []).append(np.asarray(probabilities, np.float32).copy())

    def correct(self, face_id: str, probabilities: np.ndarray) -> np.ndarray:
        """A face's smoothed probabilities (float32[K]) -> corrected by its baseline (a new array; a
        copy when the face has none)."""
        baseline = self._baselines.get(face_id)
        if baseline is None:
            return np.asarray(probabilities, np.float32).copy()
        weights = baseline.weights
        if self._stop_evidence(probabilities):
            weights = weights.copy()
            for k, _ in self._guards:
                weights[k] = 0.0
        return apply_weights(probabilities, weights)

    def _stop_evidence(self, probabilities: np.ndarray) -> bool:
        """The face gives STOP evidence at the guard levels (a level <= 0 always counts)."""
        share = 0.0
        for k, level in self._guards:
            if level <= 0:
                return True
            share += float(probabilities[k]) / level
        return share >= 1.0

    def end_frame(self, stamp: float, alive_face_ids) -> None:
        """After each frame: finish a collection whose time is up; drop baselines of ended tracks."""
        alive = set(alive_face_ids)
        for face_id in [f for f in self._baselines if f not in alive]:
            del self._baselines[face_id]
        collection = self._collection
        if collection is None:
            return
        if collection.start is None:        # the first frame after the request opens the window
            collection.start = float(stamp)
        if float(stamp) - collection.start < collection.duration_s:
            return
        self._collection = None
        done, short = [], []
        for face_id, rows in sorted(collection.samples.items()):
            if len(rows) < self.config.min_samples or face_id not in alive:
                short.append(f'{face_id} ({len(rows)} frames)')
                continue
            resting = np.mean(np.stack(rows), axis=0)
            resting = resting / resting.sum()
            weights = baseline_weights(resting, self.labels, self.config)
            self._baselines[face_id] = Baseline(face_id, resting.astype(np.float32), weights, len(rows), float(stamp))
            done.append(face_id)
        parts = []
        if done:
            parts.append(f"calibrated {', '.join(done)}")
        if short:
            parts.append(f"too few frames (< {self.config.min_samples}) for {', '.join(short)}")
        if not collection.samples:
            parts.append('no face seen' if collection.face_id is None else f'face {collection.face_id} not seen')
        self.last_result = '; '.join(parts)

    # --- reporting ------------------------------------------------------------------------------
    def describe(self, face_id: str) -> str:
        """'resting sad 0.52 neutral 0.30 ...; down-weights sad x0.25 ...' for diagnostics."""
        b = self._baselines[face_id]
        order = np.argsort(-b.resting)
        rest = ' '.join(f'{self.labels[k]} {b.resting[k]:.2f}' for k in order[:3])
        shifts = ' '.join(f'{self.labels[k]} x{math.exp(-float(b.weights[k])):.2f}'
                          for k in np.argsort(-b.weights) if b.weights[k] > 0)
        text = f'{b.samples} frames; resting {rest}; down-weights {shifts or "nothing"}'
        winner = self.labels[int(order[0])]
        if winner in self.protected and b.resting[order[0]] >= self.protected[winner]:
            text += f'; resting face reads {winner} (a STOP class) above its guard: not corrected for it'
        return text

    def status(self) -> dict[str, str]:
        """Diagnostics key/values: the calibration state and one entry per calibrated face."""
        c = self._collection
        if c is None:
            state = 'idle'
        else:
            who = c.face_id or 'all faces'
            waiting = '' if c.start is not None else ' (waiting for a frame)'
            state = f'collecting {who} for {c.duration_s:g} s{waiting}'
        values = {'neutral_calibration': state, 'neutral_calibration_last': self.last_result,
                  'neutral_baselines': ' '.join(sorted(self._baselines)) or 'none'}
        for face_id in sorted(self._baselines):
            values[f'neutral_baseline_{face_id}'] = self.describe(face_id)
        return values
