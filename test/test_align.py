"""Aligned crops (eyes level, from five landmarks) and mirrored-view test-time augmentation, on real photos."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from fer_ros.backends import create_face_detector
from fer_ros.core.spec import ModelSpec
from fer_ros.perception.align import aligned_transform, check_landmarks, face_measure
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.perception.preprocess import average_mirrors, crop_faces, with_mirrors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
GRAY64 = ModelSpec(name='gray', height=64, width=64, channels=1, mean=(0.0,), std=(1.0,))
# a level face: eyes 40 px apart, mouth 42 px below them
LEVEL = np.array([[80, 100], [120, 100], [100, 122], [86, 142], [114, 142]], np.float32)
needs_model = pytest.mark.skipif(not os.path.isfile(DEFAULT_ONNX), reason='default model not converted (make setup)')


def photo(name: str) -> np.ndarray:
    image = cv2.imread(os.path.join(REPO, 'assets', name))
    assert image is not None, name
    return image


def rotate(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned by ``degrees`` (counter-clockwise) about its centre, and the 2x3 map used."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE), matrix


def moved(landmarks: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return (np.c_[landmarks, np.ones(len(landmarks))] @ matrix.T).astype(np.float32)


@pytest.mark.parametrize('degrees', [0, 12, -25, 40, 170])
def test_the_transform_levels_the_eyes_and_centres_the_face(degrees):
    centre = LEVEL.mean(axis=0)
    turn = cv2.getRotationMatrix2D(tuple(float(v) for v in centre), degrees, 1.0)
    matrix = aligned_transform(moved(LEVEL, turn), 0.2, 64, 64)
    out = moved(moved(LEVEL, turn), matrix)
    assert abs(out[0, 1] - out[1, 1]) < 1e-3                 # eyes level again
    assert out[0, 0] < out[1, 0]                             # right eye on the image's left (upright, not flipped)
    assert abs((out[0, 0] + out[1, 0]) / 2 - 32) < 1e-3      # eyes centred horizontally
    assert out[3, 1] > out[0, 1]                             # mouth below the eyes
    # the face measure (42 px eye-mouth) spans 64 * 1.2 / (3.2 * 1.2) = 20 output pixels
    assert abs(np.hypot(*(out[3] + out[4] - out[0] - out[1]) / 2) - 20.0) < 0.05


def test_unusable_landmarks_give_no_transform():
    assert aligned_transform(None, 0.2, 64, 64) is None
    assert aligned_transform(np.full((5, 2), np.nan, np.float32), 0.2, 64, 64) is None
    assert aligned_transform(np.full((5, 2), 50.0, np.float32), 0.2, 64, 64) is None   # collapsed
    assert check_landmarks(LEVEL.ravel()).shape == (5, 2)
    with pytest.raises(ValueError, match='float\\[5, 2\\]'):
        check_landmarks(np.zeros(6))


def test_a_turned_head_is_framed_by_the_eye_mouth_distance():
    profile = LEVEL.copy()
    profile[1, 0] = 88                                       # eyes 8 px apart: a head turned away
    _, _, measure = face_measure(profile)
    assert measure == pytest.approx(np.hypot(100 - 84, 142 - 100), abs=1e-3)   # eyes centre (84, 100)


def test_faces_without_landmarks_keep_the_square_crop():
    """What the Haar detector gives (no landmarks): the aligned mode falls back to the square crop."""
    image = photo('astronaut.jpg')
    faces = create_face_detector(DetectorConfig(kind='haar')).detect(image)
    assert faces and faces[0].landmarks is None
    boxes = [f.box for f in faces]
    square = crop_faces(image, boxes, GRAY64, 0.2, crop_mode='square')
    aligned = crop_faces(image, boxes, GRAY64, 0.2, [f.landmarks for f in faces], crop_mode='aligned')
    assert np.allclose(square, aligned)
    with pytest.raises(ValueError, match='crop_mode'):
        crop_faces(image, boxes, GRAY64, 0.2, crop_mode='rotated')
    with pytest.raises(ValueError, match='landmark sets'):
        crop_faces(image, boxes, GRAY64, 0.2, [None, None], crop_mode='aligned')


@pytest.fixture(scope='module')
def upright_faces():
    detector = create_face_detector()
    found = {}
    for name in ('astronaut.jpg', 'camera.jpg'):
        image = photo(name)
        faces = detector.detect(image)
        assert len(faces) == 1 and faces[0].landmarks is not None
        found[name] = (image, faces[0])
    return found


@pytest.mark.parametrize('name', ['astronaut.jpg', 'camera.jpg'])
@pytest.mark.parametrize('degrees', [15, -15, 30, -30])
def test_tilted_copies_give_the_upright_aligned_crop(upright_faces, name, degrees):
    """Given landmarks that follow the tilt, the aligned crop of a tilted copy is the upright one."""
    image, face = upright_faces[name]
    tilted, matrix = rotate(image, degrees)
    upright = crop_faces(image, [face.box], GRAY64, 0.2, [face.landmarks], 'aligned')
    turned = crop_faces(tilted, [face.box], GRAY64, 0.2, [moved(face.landmarks, matrix)], 'aligned')
    square = crop_faces(tilted, [face.box], GRAY64, 0.2, [None], 'square')
    assert np.corrcoef(upright.ravel(), turned.ravel())[0, 1] > 0.98
    assert np.corrcoef(upright.ravel(), square.ravel())[0, 1] < 0.9      # the square crop stays tilted


@pytest.fixture(scope='module')
def backend():
    from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    return OnnxRuntimeBackend(DEFAULT_ONNX)


@needs_model
@pytest.mark.parametrize('name', ['astronaut.jpg', 'camera.jpg'])
def test_tilted_copies_classify_like_the_upright_face(upright_faces, backend, name):
    image, face = upright_faces[name]
    spec = backend.spec
    upright = backend.infer(crop_faces(image, [face.box], spec, 0.2, [face.landmarks], 'aligned'))[0]
    for degrees in (15, -15, 30, -30):
        tilted, matrix = rotate(image, degrees)
        probs = backend.infer(crop_faces(tilted, [face.box], spec, 0.2, [moved(face.landmarks, matrix)],
                                         'aligned'))[0]
        assert int(np.argmax(probs)) == int(np.argmax(upright)), degrees
        assert 0.5 * np.abs(probs - upright).sum() < 0.15, degrees      # total variation distance


@needs_model
@pytest.mark.parametrize('degrees', [0, 15, -15, 30, -30])
def test_the_detected_tilted_astronaut_stays_happy_in_both_crop_modes(backend, degrees):
    """End to end with yuface's own landmarks (which follow a tilt only partly, see docs/perception.md)."""
    tilted, _ = rotate(photo('astronaut.jpg'), degrees)
    faces = create_face_detector().detect(tilted)
    assert len(faces) == 1
    for mode in ('aligned', 'square'):
        probs = backend.infer(crop_faces(tilted, [faces[0].box], backend.spec, 0.2, [faces[0].landmarks], mode))[0]
        assert backend.labels[int(np.argmax(probs))] == 'happy' and probs.max() > 0.9, mode


def test_mirrors_follow_the_faces_in_the_same_batch():
    batch = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    both = with_mirrors(batch)
    assert both.shape == (6, 1, 8, 8) and both.flags['C_CONTIGUOUS']
    assert np.array_equal(both[:3], batch) and np.array_equal(both[4, 0, :, 0], batch[1, 0, :, -1])
    probs = np.array([[0.2, 0.8], [1.0, 0.0], [0.6, 0.4], [0.0, 1.0]], np.float32)
    assert np.allclose(average_mirrors(probs), [[0.4, 0.6], [0.5, 0.5]])
    with pytest.raises(ValueError, match='even'):
        average_mirrors(probs[:3])


@needs_model
def test_mirror_tta_is_one_inference_call_and_averages_the_pair(backend):
    from fer_ros.pipeline import PipelineConfig

    from pipelines import build, stateless

    class Counting(type(backend)):
        calls: list[int] = []

        def infer(self, batch):
            self.calls.append(len(batch))
            return super().infer(batch)

    counting = Counting(DEFAULT_ONNX)
    image = photo('astronaut.jpg')
    on = build(PipelineConfig(model_path=DEFAULT_ONNX, mirror_tta='always'), counting)
    off = build(PipelineConfig(model_path=DEFAULT_ONNX, mirror_tta='never'), counting)
    assert on.mirror and not off.mirror
    counting.calls.clear()
    mirrored = stateless(on, image)
    plain = stateless(off, image)
    assert counting.calls == [2, 1]                          # one call each: 2N rows with the mirrors
    face = plain.detections[0]
    flipped = np.ascontiguousarray(image[:, ::-1])
    mirror_face = create_face_detector().detect(flipped)[0]
    single = backend.infer(crop_faces(flipped, [mirror_face.box], backend.spec, 0.2, [mirror_face.landmarks],
                                      'aligned'))[0]
    assert face.landmarks is not None
    # the TTA result lies between the face's and (about) its mirror's own results
    assert np.allclose(mirrored.probabilities[0], (plain.probabilities[0] + single) / 2, atol=0.1)
    assert abs(float(mirrored.probabilities.sum()) - 1.0) < 1e-4


def test_the_model_spec_carries_the_mirror_default():
    spec = ModelSpec(name='m', channels=1, mean=(0.5,), std=(0.5,), mirror_tta=True)
    assert ModelSpec.from_json(spec.to_json()).mirror_tta is True
    assert ModelSpec.from_json(ModelSpec(name='m').to_json()).mirror_tta is False
    with pytest.raises(ValueError, match='mirror_tta'):
        ModelSpec(name='m', mirror_tta='yes')
