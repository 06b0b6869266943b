"""Per-face temporal smoothing of class probabilities, and valence/arousal from probabilities.

A classifier looking at one face in consecutive video frames flickers: one blurred or half-closed-eye
frame can move the argmax to another class. Smoothing the probability vector over a few frames before
taking the argmax keeps the published expression (and the commands derived from it) stable, while a
real, sustained change still comes through after a few frames.

Methods (``SmoothingConfig.method``); every setting is in seconds of frame stamps, so the smoothing
keeps the same timing whatever rate the node runs at (30 Hz on a desktop, 10 Hz on a busy Jetson):

- ``'ema'``: exponential moving average with time constant ``tau_s``:
  ``s_t = alpha * p_t + (1 - alpha) * s_prev`` with ``alpha = 1 - exp(-dt / tau_s)`` for the ``dt``
  seconds since the face's previous frame; ``s_0 = p_0``. With the default 0.1 s a one-frame outlier
  at 30 Hz moves the state 28 % of the way (at 10 Hz: 63 %, but it also lasts three times longer), and
  a sustained, confident change wins after about 0.05-0.1 s (e.g. 0.8 happy -> 0.8 scared: frame 3 at
  30 Hz, frame 1 at 10 Hz).
- ``'window'``: mean of the frames of the last ``window_s`` seconds (all weigh the same).
- ``'none'``: the current frame as is.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass

import numpy as np

from fer_ros.core.labels import CIRCUMPLEX
from fer_ros.core.validate import check_fields, setting

SMOOTHING_METHODS: tuple[str, ...] = ('ema', 'window', 'none')


@dataclass(frozen=True)
class SmoothingConfig:
    """How each face's probabilities are smoothed over frames.

    method: 'ema' | 'window' | 'none'.
    tau_s: EMA time constant in seconds (> 0); the weight of a frame arriving dt seconds after the
        previous one is 1 - exp(-dt / tau_s). Used by 'ema'.
    window_s: the frames of the last window_s seconds are averaged (> 0; the newest frame always
        counts). Used by 'window'.
    """

    method: str = setting('ema', choices=SMOOTHING_METHODS)
    tau_s: float = setting(0.1, low=0.0, high=10.0, low_open=True)
    window_s: float = setting(0.2, low=0.0, high=10.0, low_open=True)

    def __post_init__(self) -> None:
        check_fields(self)


class Smoother(ABC):
    """Smooths a stream of probability vectors float32[K] (one face, model label order)."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes

    def update(self, probabilities: np.ndarray, stamp: float) -> np.ndarray:
        """Add this frame's probabilities float32[K] (finite, each in 0..1, summing to 1; the tracker
        checks that once per frame) seen at ``stamp`` seconds, and return the smoothed vector float32[K],
        a copy that sums to 1. A stamp older than the previous one counts as no time passed."""
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if p.shape[0] != self.num_classes:
            raise ValueError(f'expected {self.num_classes} probabilities, got {p.shape[0]}')
        smoothed = self._update(p, float(stamp))
        total = smoothed.sum()
        # Renormalise: float round-off (and classifiers whose rows sum to 0.999) must not drift the sum.
        if total > 0:
            smoothed = smoothed / total
        return smoothed.astype(np.float32)

    @abstractmethod
    def _update(self, p: np.ndarray, stamp: float) -> np.ndarray:
        """float64[K] in, float64[K] smoothed out."""


class EmaSmoother(Smoother):
    """Exponential moving average with a time constant; the first frame initialises the state."""

    def __init__(self, num_classes: int, tau_s: float) -> None:
        super().__init__(num_classes)
        if not tau_s > 0.0:
            raise ValueError(f'tau_s must be > 0, got {tau_s}')
        self.tau_s = float(tau_s)
        self._state: np.ndarray | None = None
        self._stamp = 0.0

    def weight(self, dt: float) -> float:
        """The weight of a frame ``dt`` seconds after the previous one: 1 - exp(-dt / tau_s)."""
        return 1.0 - math.exp(-max(0.0, dt) / self.tau_s)

    def _update(self, p: np.ndarray, stamp: float) -> np.ndarray:
        if self._state is None:
            self._state, self._stamp = p.copy(), stamp
        else:
            alpha = self.weight(stamp - self._stamp)
            self._state = alpha * p + (1.0 - alpha) * self._state
            self._stamp = max(self._stamp, stamp)
        return self._state


class WindowSmoother(Smoother):
    """Mean of the frames of the last ``window_s`` seconds (the newest always counts)."""

    def __init__(self, num_classes: int, window_s: float) -> None:
        super().__init__(num_classes)
        if not window_s > 0.0:
            raise ValueError(f'window_s must be > 0, got {window_s}')
        self.window_s = float(window_s)
        self._frames: deque[tuple[float, np.ndarray]] = deque()

    def _update(self, p: np.ndarray, stamp: float) -> np.ndarray:
        self._frames.append((stamp, p.copy()))
        newest = max(t for t, _ in self._frames)
        while newest - self._frames[0][0] >= self.window_s - 1e-6:    # stamps are sums of frame periods
            self._frames.popleft()
        return np.mean([q for _, q in self._frames], axis=0)


class NoSmoother(Smoother):
    """Passes the current frame through (renormalised)."""

    def _update(self, p: np.ndarray, stamp: float) -> np.ndarray:
        return p


def make_smoother(config: SmoothingConfig, num_classes: int) -> Smoother:
    """A fresh smoother for one face, as ``config`` says."""
    if config.method == 'ema':
        return EmaSmoother(num_classes, config.tau_s)
    if config.method == 'window':
        return WindowSmoother(num_classes, config.window_s)
    return NoSmoother(num_classes)


def circumplex_matrix(labels: tuple[str, ...] | list[str]) -> np.ndarray:
    """Circumplex coordinates of each label, float32[K, 2] (columns valence, arousal), in ``labels`` order.

    Raises:
        ValueError: a label has no circumplex coordinates (not one of the canonical expression words).
    """
    missing = [name for name in labels if name not in CIRCUMPLEX]
    if missing:
        raise ValueError(f'no circumplex coordinates for label(s) {missing}; known: {sorted(CIRCUMPLEX)}')
    return np.array([CIRCUMPLEX[name] for name in labels], dtype=np.float32).reshape(len(labels), 2)


def circumplex_point(p: np.ndarray, coords: np.ndarray) -> tuple[float, float]:
    """Valence and arousal of a face: the probability-weighted mean of the classes' circumplex points.

    Coordinates (``fer_ros.core.labels.CIRCUMPLEX``, valence, arousal in -1..1):

    ========== ======= =======
    expression valence arousal
    ========== ======= =======
    neutral      0.0     0.0
    happy        0.8     0.5
    surprised    0.2     0.8
    scared      -0.6     0.7
    angry       -0.6     0.6
    disgusted   -0.7     0.3
    sad         -0.7    -0.4
    ========== ======= =======

    Sources: the placement follows Russell's circumplex model of affect (J. A. Russell, "A circumplex
    model of affect", J. Pers. Soc. Psychol. 39(6), 1980): pleasant (happy) to the right, unpleasant
    (sad, disgusted, angry, scared) to the left, activated (surprised, scared, angry) at the top,
    deactivated (sad) at the bottom, neutral at the origin. The magnitudes are the project's choice,
    made to sit in the regions the categorical labels occupy in the AffectNet valence/arousal
    annotations (Mollahosseini, Hasani, Mahoor, "AffectNet", IEEE Trans. Affective Computing 2017);
    they are not measured per face. Treat the result as a smooth summary for robot behaviour, not a
    calibrated affect measurement: a classifier trained on categorical FER2013 labels does not measure
    valence or arousal directly.

    Args:
        p: float[K] class probabilities (0..1, summing to about 1; negatives count as 0).
        coords: float[K, 2] from ``circumplex_matrix`` in the same label order (the tracker computes
            it once per label order).
    Returns:
        (valence, arousal), each a float clipped to -1..1. An all-zero vector gives (0.0, 0.0).
    Raises:
        ValueError: ``p`` and ``coords`` have different lengths.
    """
    p = np.clip(np.asarray(p, dtype=np.float64).reshape(-1), 0.0, None)
    if p.shape[0] != len(coords):
        raise ValueError(f'{p.shape[0]} probabilities for {len(coords)} labels')
    total = p.sum()
    if total <= 0:
        return 0.0, 0.0
    valence, arousal = np.clip((p / total) @ coords.astype(np.float64), -1.0, 1.0)
    return float(valence), float(arousal)
