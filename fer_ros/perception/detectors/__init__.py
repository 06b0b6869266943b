"""Face detectors behind one interface (``FaceDetector`` in ``base``), one module per kind, and the
factory that picks one from a ``DetectorConfig``:

- ``yunet`` (default): the libfacedetection CNN as ONNX on a fer_ros backend;
- ``yuface``: the same CNN through the `yuface` wheel's compiled library;
- ``haar``: OpenCV's frontal-face Haar cascade.

The base class's docstring describes the shared contract (bounded input size, boxes in source pixels,
ROI-assisted detection).
"""
from __future__ import annotations

from fer_ros.perception.detectors.base import (
    DETECTOR_BACKENDS,
    DETECTOR_KINDS,
    MAX_ROI_UPSCALE,
    DetectorConfig,
    FaceDetector,
    check_bgr,
)
from fer_ros.perception.detectors.haar import HaarDetector, find_haar_cascade
from fer_ros.perception.detectors.yuface import YuFaceDetector
from fer_ros.perception.detectors.yunet import YuNetDetector

__all__ = ['DETECTOR_BACKENDS', 'DETECTOR_KINDS', 'MAX_ROI_UPSCALE', 'DetectorConfig', 'FaceDetector', 'HaarDetector',
           'YuFaceDetector', 'YuNetDetector', 'check_bgr', 'create_detector', 'find_haar_cascade']


def create_detector(config: DetectorConfig | None = None, runner_factory=None) -> FaceDetector:
    """The detector named by ``config.kind`` ('yunet', 'yuface' or 'haar').

    Args:
        runner_factory: for 'yunet' (required there), ``f(model_path, config) -> TensorRunner``:
            ``fer_ros.backends.create_detector_runner``, or call ``fer_ros.backends.create_face_detector``
            (core does not import the backends).
    Raises:
        RuntimeError / FileNotFoundError / BackendError: the detector's library, model or cascade is
            missing (the message says how to fix).
    """
    config = config or DetectorConfig()
    if config.kind == 'yunet':
        if runner_factory is None:
            raise ValueError("detector 'yunet' runs on a backend: pass runner_factory "
                             '(fer_ros.backends.create_detector_runner) or use fer_ros.backends.create_face_detector')
        return YuNetDetector(config, runner_factory)
    return YuFaceDetector(config) if config.kind == 'yuface' else HaarDetector(config)
