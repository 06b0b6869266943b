"""Per-face temporal smoothing of class probabilities, and valence/arousal from probabilities.

A classifier looking at one face in consecutive video frames flickers: one blurred or half-closed-eye
frame can move the argmax to another class. Smoothing the probability vector over a few frames before
taking the argmax keeps the published expression (and the commands derived from it) stable, while a
real, sustained change still comes through after a few frames.

Methods (``SmoothingConfig.method``):

- ``'ema'``: exponential moving average, ``s_t = alpha * p_t + (1 - alpha) * s_{t-1}``, ``s_0 = p_0``.
  A one-frame outlier moves the state ``alpha`` of the way: to win in one frame, a class must beat
  the current winner in that frame by more than ``(1 - alpha) / alpha`` times (1.5x with the default
  0.4) the winner's smoothed lead. A confident, sustained change flips the expression on its second
  frame (e.g. 0.8 happy -> 0.8 scared).
- ``'window'``: mean of the last ``window`` probability vectors (all frames weigh the same; a one-frame
  outlier has weight ``1 / window``).
- ``'none'``: the current frame as is.

Smoothing counts frames, not seconds: the node processes frames at the camera (or ``max_rate_hz``)
rate, and the command mapper's confirmation times are the place where seconds matter.
"""
from __future__ import annotations

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
    alpha: EMA weight of the newest frame, 0 < alpha <= 1 (1 = no smoothing). Used by 'ema'.
    window: number of most recent frames averaged, >= 1. Used by 'window'.
    """

    method: str = setting('ema', choices=SMOOTHING_METHODS)
    alpha: float = setting(0.4, low=0.0, high=1.0, low_open=True)
    window: int = setting(5, low=1, high=100)

    def __post_init__(self) -> None:
        check_fields(self)


class Smoother(ABC):
    """Smooths a stream of probability vectors float32[K] (one face, model label order)."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes

    def update(self, probabilities: np.ndarray) -> np.ndarray:
        """Add this frame's probabilities float32[K] (each in 0..1, summing to 1) and return the smoothed
        vector float32[K], a copy that sums to 1."""
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if p.shape[0] != self.num_classes:
            raise ValueError(f'expected {self.num_classes} probabilities, got {p.shape[0]}')
        if not np.all(np.isfinite(p)):
            raise ValueError(f'probabilities must be finite, got {p}')
        smoothed = self._update(p)
        total = smoothed.sum()
        # Renormalise: float round-off (and classifiers whose rows sum to 0.999) must not drift the sum.
        if total > 0:
            smoothed = smoothed / total
        return smoothed.astype(np.float32)

    @abstractmethod
    def _update(self, p: np.ndarray) -> np.ndarray:
        """float64[K] in, float64[K] smoothed out."""


class EmaSmoother(Smoother):
    """Exponential moving average; the first frame initialises the state."""

    def __init__(self, num_classes: int, alpha: float) -> None:
        super().__init__(num_classes)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f'alpha must be in (0, 1], got {alpha}')
        self.alpha = float(alpha)
        self._state: np.ndarray | None = None

    def _update(self, p: np.ndarray) -> np.ndarray:
        self._state = p.copy() if self._state is None else self.alpha * p + (1.0 - self.alpha) * self._state
        return self._state


class WindowSmoother(Smoother):
    """Mean of the last ``window`` frames (fewer while the window fills)."""

    def __init__(self, num_classes: int, window: int) -> None:
        super().__init__(num_classes)
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self._frames: deque[np.ndarray] = deque(maxlen=int(window))

    def _update(self, p: np.ndarray) -> np.ndarray:
        self._frames.append(p.copy())
        return np.mean(self._frames, axis=0)


class NoSmoother(Smoother):
    """Passes the current frame through (renormalised)."""

    def _update(self, p: np.ndarray) -> np.ndarray:
        return p


def make_smoother(config: SmoothingConfig, num_classes: int) -> Smoother:
    """A fresh smoother for one face, as ``config`` says."""
    if config.method == 'ema':
        return EmaSmoother(num_classes, config.alpha)
    if config.method == 'window':
        return WindowSmoother(num_classes, config.window)
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
