"""ModelSpec: what a classifier expects and returns, stored inside the model file.

The spec is written into the ONNX file's metadata (key ``fer_ros``, a JSON string) by every export
path and read back by preprocessing, every backend, the node and the tools, so the label order,
input size, channels and normalisation have exactly one source of truth: the artifact.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from fer_ros.core.labels import EXPRESSIONS

METADATA_KEY = 'fer_ros'


@dataclass(frozen=True)
class ModelSpec:
    """Input/output contract of an expression classifier.

    The model input is ``float32[N, channels, height, width]`` (NCHW) computed from an 8-bit crop as
    ``x = (pixel / 255 - mean[c]) / std[c]``; ``channels`` is 1 (gray) or 3 (RGB order).
    The model output is ``float32[N, len(labels)]``: probabilities if ``output == 'probabilities'``
    (rows sum to 1), else logits.
    ``mirror_tta``: the model's default for mirrored-view test-time augmentation (each face is
    classified together with its horizontal mirror and the two probability rows are averaged); set
    by the export from benchmark figures, overridable per run (PipelineConfig.mirror_tta).
    """

    name: str
    labels: tuple[str, ...] = EXPRESSIONS
    height: int = 48
    width: int = 48
    channels: int = 3
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    output: str = 'probabilities'          # 'probabilities' | 'logits'
    input_name: str = 'input'
    output_name: str = 'probabilities'
    mirror_tta: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # provenance: dataset, split, accuracy, sha256...

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f'ModelSpec.channels must be 1 or 3, got {self.channels}')
        if self.height < 8 or self.width < 8:
            raise ValueError(f'ModelSpec input size {self.height}x{self.width} is too small')
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError('ModelSpec.mean and .std need one value per channel')
        if any(s <= 0 for s in self.std):
            raise ValueError('ModelSpec.std values must be > 0')
        if self.output not in ('probabilities', 'logits'):
            raise ValueError(f"ModelSpec.output must be 'probabilities' or 'logits', got {self.output!r}")
        if not isinstance(self.mirror_tta, bool):
            raise ValueError(f'ModelSpec.mirror_tta must be true or false, got {self.mirror_tta!r}')
        if len(set(self.labels)) != len(self.labels) or not self.labels:
            raise ValueError(f'ModelSpec.labels must be unique and non-empty, got {self.labels}')

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'ModelSpec':
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f'unknown ModelSpec fields in model metadata: {sorted(unknown)}')
        for key in ('labels', 'mean', 'std'):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def read_onnx_spec(path: str) -> ModelSpec:
    """Read the ModelSpec from an ONNX file's metadata with ONNX Runtime (no ``onnx`` needed).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a loadable ONNX model or carries no ``fer_ros`` metadata.
    """
    import os

    import onnxruntime as ort

    if not os.path.isfile(path):
        raise FileNotFoundError(f'model file not found: {path}')
    try:
        sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    except Exception as exc:  # ORT raises its own exception types
        raise ValueError(f'{path}: not a loadable ONNX model ({exc})') from exc
    return spec_from_metadata(sess.get_modelmeta().custom_metadata_map, path)


def spec_from_metadata(meta: dict[str, str], source: str) -> ModelSpec:
    """The ModelSpec in a model's metadata map (ONNX custom metadata, a TensorRT engine's sidecar...).

    Raises:
        ValueError: no ``fer_ros`` entry, or one that is not a valid ModelSpec; the message names ``source``.
    """
    if METADATA_KEY not in meta:
        raise ValueError(f'{source}: model metadata has no {METADATA_KEY!r} entry; export it with fer-export')
    try:
        return ModelSpec.from_json(meta[METADATA_KEY])
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f'{source}: invalid {METADATA_KEY!r} metadata: {exc}') from exc
