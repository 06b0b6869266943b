"""Procedurally generated 7-class pattern images: a learnable stand-in for a FER dataset.

No facial-expression data ships with the project; this set proves the training loop learns (tests,
smoke runs) and exercises every data path. Class k is a texture family (stripes at four angles,
rings, checkerboard, blobs) with random period, phase, position, contrast, brightness and noise, so
a classifier must learn the structure, not a constant. Class indices follow EXPRESSIONS order only
as numbers; the patterns mean nothing about expressions.
"""
from __future__ import annotations

import numpy as np

NUM_CLASSES = 7


def _pattern(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """float32[size, size] in roughly [-1, 1] for class ``kind``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(5.0, 11.0)
    phase = rng.uniform(0, 2 * np.pi)
    cx, cy = rng.uniform(0.3, 0.7, size=2) * size
    k = 2 * np.pi / period
    if kind == 0:
        return np.sin(k * yy + phase)
    if kind == 1:
        return np.sin(k * xx + phase)
    if kind == 2:
        return np.sin(k * (xx + yy) / np.sqrt(2) + phase)
    if kind == 3:
        return np.sin(k * (xx - yy) / np.sqrt(2) + phase)
    if kind == 4:
        return np.sin(k * np.hypot(xx - cx, yy - cy) + phase)
    if kind == 5:
        return np.sign(np.sin(k * xx + phase) * np.sin(k * yy + phase)).astype(np.float32)
    # kind 6: a few soft blobs
    out = np.full((size, size), -1.0, np.float32)
    for _ in range(rng.integers(2, 5)):
        bx, by = rng.uniform(0.15, 0.85, size=2) * size
        r = rng.uniform(0.08, 0.18) * size
        out += 2.0 * np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * r * r))
    return np.clip(out, -1, 1)


def make_patterns(per_class: int, size: int = 48, seed: int = 0, noise: float = 0.15
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``per_class`` images of each of the 7 classes.

    Returns:
        images: uint8[7 * per_class, size, size] gray; labels: int64[7 * per_class] in 0..6,
        in class-major order (shuffle or split them; the order carries no information).
    Raises:
        ValueError: per_class < 1 or size < 8.
    """
    if per_class < 1:
        raise ValueError(f'per_class must be >= 1, got {per_class}')
    if size < 8:
        raise ValueError(f'size must be >= 8, got {size}')
    rng = np.random.default_rng(seed)
    images = np.empty((NUM_CLASSES * per_class, size, size), np.uint8)
    labels = np.repeat(np.arange(NUM_CLASSES, dtype=np.int64), per_class)
    for i, kind in enumerate(labels):
        contrast = rng.uniform(0.5, 1.0)
        brightness = rng.uniform(-0.2, 0.2)
        img = contrast * _pattern(int(kind), size, rng) + brightness
        img += rng.normal(0.0, noise, size=img.shape)
        images[i] = np.clip((img + 1.0) * 127.5, 0, 255).astype(np.uint8)
    return images, labels
