"""The one small interface every inference backend implements."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from fer_ros.core.spec import ModelSpec


class BackendError(RuntimeError):
    """A backend could not load a model or run it; the message names the file and the cause."""


class Backend(ABC):
    """Runs an expression classifier.

    Attributes:
        name: backend id ('onnxruntime', 'tensorrt', 'torch').
        spec: the model's ModelSpec (labels, input size, channels, normalisation).
        device: human-readable device description (e.g. 'CPU', 'CUDA:0 NVIDIA Orin').
    """

    name: str = 'base'
    spec: ModelSpec
    device: str = 'CPU'

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def input_spec(self) -> ModelSpec:
        return self.spec

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
