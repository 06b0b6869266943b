"""Which inference backend runs the classifier, and its options: the one definition of these choices.

``fer_ros.backends`` implements them, the PipelineConfig carries them, and the node's parameters and
the CLIs are derived from them. Kept apart from the pipeline so the backends import only this and the
model spec from core.
"""
from __future__ import annotations

BACKENDS: tuple[str, ...] = ('auto', 'onnxruntime', 'tensorrt', 'torch')
