"""ModelSpec: what a classifier expects and returns, stored inside the model file.

The spec is written into the ONNX file's metadata (key ``fer_ros``, a JSON string) by every export
path and read back by preprocessing, every backend, the node and the tools, so the label order,
input size, channels and normalisation have exactly one source of truth: the artifact. ``MetadataSpec``
is the storing and reading shared with the face detector's spec; reading an ONNX file's metadata is the
backends' job (``fer_ros.backends.onnxruntime_backend.read_onnx_spec``).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from fer_ros.core.labels import EXPRESSIONS

METADATA_KEY = 'fer_ros'

_Spec = TypeVar('_Spec', bound='MetadataSpec')


class MetadataSpec:
    """A frozen dataclass stored inside a model file: JSON under ``METADATA_KEY`` in the file's metadata map
    (ONNX custom metadata, a TensorRT engine's sidecar). ``ModelSpec`` (the classifier) and
    ``fer_ros.perception.detectors.yunet.DetectorSpec`` (the face detector) are the two.

    Subclasses set METADATA_KEY, and KIND and MADE_BY for the error messages (what the model is, the tool
    that makes it); tuple fields
    come back from JSON as tuples; validation is the subclass's ``__post_init__``.
    """

    METADATA_KEY: ClassVar[str]
    KIND: ClassVar[str]
    MADE_BY: ClassVar[str]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)  # type: ignore[call-overload]

    def to_metadata(self) -> dict[str, str]:
        """{METADATA_KEY: JSON}: the entry to write into a model file's metadata."""
        return {self.METADATA_KEY: self.to_json()}

    @classmethod
    def from_json(cls: type[_Spec], text: str) -> _Spec:
        """Raises ValueError for invalid JSON, unknown or missing fields, or values the spec rejects."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f'a {cls.__name__} is a JSON object, got {type(data).__name__}')
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - set(fields)
        if unknown:
            raise ValueError(f'unknown {cls.__name__} fields: {sorted(unknown)}')
        for name, value in data.items():
            if isinstance(value, list) and str(fields[name].type).startswith('tuple'):
                data[name] = tuple(value)
        try:
            return cls(**data)
        except TypeError as exc:   # a required field is missing
            raise ValueError(str(exc)) from None

    @classmethod
    def from_metadata(cls: type[_Spec], metadata: Mapping[str, str], source: str) -> _Spec:
        """The spec in a model's metadata map.

        Raises:
            ValueError: no METADATA_KEY entry, or one that is not a valid spec; the message names ``source``.
        """
        if cls.METADATA_KEY not in metadata:
            raise ValueError(f'{source}: model metadata has no {cls.METADATA_KEY!r} entry: not a fer_ros '
                             f'{cls.KIND} (make it with {cls.MADE_BY})')
        try:
            return cls.from_json(metadata[cls.METADATA_KEY])
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ValueError(f'{source}: invalid {cls.METADATA_KEY!r} metadata: {exc}') from exc


@dataclass(frozen=True)
class ModelSpec(MetadataSpec):
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

    METADATA_KEY: ClassVar[str] = METADATA_KEY
    KIND: ClassVar[str] = 'expression classifier'
    MADE_BY: ClassVar[str] = 'fer-export'

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
