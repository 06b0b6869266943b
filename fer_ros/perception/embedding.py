"""Face embeddings: who a face is, as a 128-d vector from a face recognition network.

The network (made by ``fer-convert-face-api`` from the MIT-licensed npm package
``@vladmandic/face-api``: dlib's ResNet metric network) carries an ``EmbedderSpec`` in its ONNX metadata
(key ``fer_ros_embedder``): input size, names, and ``model_id``, which the people store records so an
enrolment file is never compared with vectors of another network.

Crop: a similarity transform from five landmarks (face-api's 68 reduced to eye centres, nose tip and
mouth corners, else the detector's five; eyes level, scaled by the eye/mouth
geometry of ``fer_ros.core.align.face_measure``) onto a ``size`` x ``size`` chip that frames the face
from the brows to below the chin and from jaw to jaw (what face-api gives the network: the box of its
68 landmarks, padded by 20 %). Faces without landmarks take the square crop around their box.

Embeddings are L2-normalised here, and compared by Euclidean distance
(``fer_ros.util.vectors.unit_distance``): for unit vectors that is sqrt(2 - 2 cos), a monotone function
of the cosine. The threshold comes from ``make bench-people``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from fer_ros.core.spec import MetadataSpec
from fer_ros.perception.align import eyes_level_transform
from fer_ros.perception.landmarks import NUM_POINTS, five_points
from fer_ros.perception.preprocess import crop_square, warp_face
from fer_ros.perception.resample import resample
from fer_ros.util.vectors import unit_rows

# The chip's side in face measures, and how far below the eyes' centre its centre lies (face measures).
# Chosen from face geometry (a face measure ~ the eye-to-mouth distance; jaw width ~ 2.2 of it, brows
# 0.3 above the eyes, chin 1.7 below) so the chip holds the face-api framing; bench-people reports the
# verification error with it.
CHIP_SIDE_PER_MEASURE = 2.6
CHIP_CENTRE_BELOW_EYES = 0.65
# Faces without landmarks: the square crop of the box with this margin (fer_ros.perception.preprocess.square_box).
BOX_MARGIN = 0.1


@dataclass(frozen=True)
class EmbedderSpec(MetadataSpec):
    """Input/output contract of the face embedding network (stored in the ONNX metadata).

    input_name: float32[N, 3, size, size] BGR 0..255 (normalisation inside the graph).
    output_name: float32[N, dim] descriptor (not normalised). model_id: names the network and its weights;
    stored enrolments are only compared with embeddings of the same model_id. extra: provenance, licence.
    """

    METADATA_KEY: ClassVar[str] = 'fer_ros_embedder'
    KIND: ClassVar[str] = 'face embedding network'
    MADE_BY: ClassVar[str] = 'fer-convert-face-api'

    model_id: str
    name: str = 'face-api recognition (dlib ResNet)'
    input_name: str = 'image'
    output_name: str = 'embedding'
    size: int = 150
    dim: int = 128
    channel_order: str = 'BGR'
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.channel_order != 'BGR':
            raise ValueError(f"EmbedderSpec.channel_order must be 'BGR', got {self.channel_order!r}")
        if self.size < 16 or self.dim < 1 or not self.model_id:
            raise ValueError(f'EmbedderSpec: size {self.size} (>= 16), dim {self.dim} (>= 1) and a model_id are needed')



def chip_transform(landmarks, size: int) -> np.ndarray | None:
    """float64[2, 3] affine map source pixels -> the ``size`` x ``size`` chip, or None (no usable landmarks).

    landmarks: source pixels, float[68, 2] (face-api's: preferred, they follow a tilted head) or float[5, 2]
    (the detector's: right eye, left eye, nose, right mouth corner, left mouth corner).
    """
    if landmarks is not None and np.shape(landmarks) == (NUM_POINTS, 2):
        landmarks = five_points(landmarks)
    return eyes_level_transform(landmarks, CHIP_SIDE_PER_MEASURE, CHIP_CENTRE_BELOW_EYES, size, size)


def face_chips(bgr: np.ndarray, boxes: Sequence[Sequence[float]], landmarks: Sequence[np.ndarray | None],
               size: int) -> np.ndarray:
    """float32[N, 3, size, size] BGR 0..255 chips of N faces (landmark-aligned, else the box's square crop)."""
    chips = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, box in enumerate(boxes):
        matrix = chip_transform(landmarks[i], size) if landmarks[i] is not None else None
        if matrix is not None:
            chips[i] = warp_face(bgr, matrix, (size, size))
        else:
            crop = crop_square(bgr, box, BOX_MARGIN)
            chips[i] = resample(crop, (size, size))
    return np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32)



class FaceEmbedder:
    """The embedding network behind a runner: ``embed(bgr, boxes, landmarks)`` -> unit vectors.

    Args:
        runner: a fer_ros.backends tensor runner (``run(feeds, outputs)`` and ``metadata``), created
            outside the core so the core imports no backend.
        source: the model file (for messages).
    Raises:
        ValueError: the model has no embedder metadata.
    """

    def __init__(self, runner, source: str) -> None:
        self.runner = runner
        self.source = source
        self.spec = EmbedderSpec.from_metadata(runner.metadata, source)

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    def embed(self, bgr: np.ndarray, boxes: Sequence[Sequence[float]],
              landmarks: Sequence[np.ndarray | None]) -> np.ndarray:
        """float32[N, dim] unit embeddings of N faces of ``bgr`` (one network call); (0, dim) for none."""
        if len(boxes) == 0:
            return np.zeros((0, self.spec.dim), np.float32)
        chips = face_chips(bgr, boxes, landmarks, self.spec.size)
        out = self.runner.run({self.spec.input_name: chips}, [self.spec.output_name])[self.spec.output_name]
        out = np.asarray(out, np.float32)
        if out.shape != (len(boxes), self.spec.dim):
            raise ValueError(f'{self.source}: embedding output shape {list(out.shape)}, expected '
                             f'[{len(boxes)}, {self.spec.dim}]')
        return unit_rows(out)

    def warm_up(self) -> None:
        """One blank call, so the first face met does not pay the session's first-run cost."""
        size = self.spec.size
        self.runner.run({self.spec.input_name: np.zeros((1, 3, size, size), np.float32)}, [self.spec.output_name])

    def close(self) -> None:
        self.runner.close()
