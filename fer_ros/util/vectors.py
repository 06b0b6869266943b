"""Unit-vector helpers for face embeddings (shared by the embedder in perception and identity in hri)."""
from __future__ import annotations

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32[..., D] scaled to unit length along the last axis (a zero vector stays zero)."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def unit_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between unit vectors: a float[D] or float[M, D] against b float[N, D]
    -> float32[N] or float32[M, N], 0 (same) .. 2 (opposite); sqrt(2 - 2 cos), monotone in the cosine."""
    a2 = np.atleast_2d(np.asarray(a, np.float32))
    b2 = np.atleast_2d(np.asarray(b, np.float32))
    d = np.sqrt(np.clip(2.0 - 2.0 * (a2 @ b2.T), 0.0, 4.0))
    return d[0] if np.ndim(a) == 1 else d
