"""The one small interface every inference backend implements."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from fer_ros.core.spec import ModelSpec


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of float[N, K] -> float32[N, K]."""
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def check_batch(batch: np.ndarray, spec: ModelSpec, who: str) -> np.ndarray:
    """Validate a classifier batch against ``spec``; returns it as C-contiguous float32[N, C, H, W].

    Raises:
        ValueError: wrong rank, dtype, empty batch, or C/H/W different from the spec.
    """
    want = (spec.channels, spec.height, spec.width)
    if not isinstance(batch, np.ndarray) or batch.ndim != 4 or tuple(batch.shape[1:]) != want or batch.shape[0] < 1:
        got = list(batch.shape) if isinstance(batch, np.ndarray) else type(batch).__name__
        raise ValueError(f'{who}.infer expects float32[N>=1, {want[0]}, {want[1]}, {want[2]}], got {got}')
    if batch.dtype != np.float32:
        raise ValueError(f'{who}.infer expects float32, got {batch.dtype}')
    return np.ascontiguousarray(batch)


class BackendError(RuntimeError):
    """A backend could not load a model or run it; the message names the file and the cause."""


class Backend(ABC):
    """Runs an expression classifier.

    Attributes:
        name: implementation ('onnxruntime', 'tensorrt', 'torch').
        choice: the backend choice it runs as ('cpu', 'cuda', 'tensorrt', 'tensorrt-ep', 'torch'; set by
            fer_ros.backends.create_backend, '' when constructed directly). selected: why, when 'auto' chose it.
        spec: the model's ModelSpec (labels, input size, channels, normalisation).
        device: human-readable device description (e.g. 'CPU', 'CUDA:0 NVIDIA Orin').
    """

    name: str = 'base'
    choice: str = ''
    selected: str = ''
    spec: ModelSpec
    device: str = 'CPU'

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Classify a batch of preprocessed face crops.

        Args:
            batch: float32[N, C, H, W], C/H/W and normalisation as in ``self.spec``; N >= 1.
        Returns:
            float32[N, K] class probabilities (rows sum to 1) in ``self.spec.labels`` order,
            whatever the model's raw output is.
        """

    def close(self) -> None:
        """Release device resources (default: nothing to release)."""


class TensorRunner(ABC):
    """Runs any ONNX model with named tensors (the face detector; shapes may vary per call).

    Attributes:
        name: implementation ('onnxruntime', 'tensorrt'). choice: as Backend.choice. device: e.g. 'CPU',
            'GPU (Tensorrt)'.
        metadata: the model file's metadata map {key: string} (where the model's own spec lives).
    """

    name: str = 'base'
    choice: str = ''
    selected: str = ''
    device: str = 'CPU'
    metadata: dict[str, str]
    max_input_side: int | None = None      # a TensorRT profile's longest input side; None = any size

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> dict[str, np.ndarray]:
        """Run once. feeds: {input name: array of the model's dtype}. Returns {output name: array}."""

    def close(self) -> None:
        """Release device resources (default: nothing to release)."""
