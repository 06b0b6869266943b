"""fer-convert-face-api: reading TF.js weights, the pinned tarball check, and the converted models (metadata
with provenance, landmarks that land on a real face, embeddings that tell two real people apart)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fer_ros.backends import create_face_detector, create_face_embedder, create_face_landmarker
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.perception.embedding import EmbedderSpec
from fer_ros.perception.landmarks import LandmarkSpec, five_points
from fer_ros.sample_frames import load_asset
from fer_ros.tools import convert_face_api
from fer_ros.util.paths import default_embedder_model_path, default_landmark_model_path
from fer_ros.util.vectors import unit_distance


def test_tfjs_weights_are_dequantised_in_manifest_order():
    manifest = [{'paths': ['x.bin'], 'weights': [
        {'name': 'a', 'shape': [2, 2], 'dtype': 'float32', 'quantization': {'dtype': 'uint8', 'scale': 0.5,
                                                                           'min': -1.0}},
        {'name': 'b', 'shape': [3], 'dtype': 'float32'}]}]
    data = bytes([0, 1, 2, 255]) + np.array([1.5, -2.0, 3.25], np.float32).tobytes()
    weights = convert_face_api.read_tfjs_weights(manifest, data, 'x.bin')
    assert weights['a'].tolist() == [[-1.0, -0.5], [0.0, 126.5]]
    assert weights['b'].tolist() == [1.5, -2.0, 3.25]
    with pytest.raises(ValueError, match='x.bin'):
        convert_face_api.read_tfjs_weights(manifest, data[:-1], 'x.bin')
    with pytest.raises(ValueError, match='x.bin'):
        convert_face_api.read_tfjs_weights(manifest, data + b'\0', 'x.bin')


def test_a_tarball_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    (tmp_path / convert_face_api.TARBALL).write_bytes(b'not the package')
    with pytest.raises(ValueError, match='sha256 differs'):
        convert_face_api.fetch_tarball(str(tmp_path))
    monkeypatch.setattr(convert_face_api.shutil, 'which', lambda name: None)
    with pytest.raises(FileNotFoundError, match='npm'):
        convert_face_api.fetch_tarball(str(tmp_path / 'empty'))
    assert convert_face_api.main(['--tarball', str(tmp_path / 'missing.tgz')]) == 1


@pytest.fixture(scope='module')
def networks():
    try:
        default_embedder_model_path()
        default_landmark_model_path()
    except FileNotFoundError as exc:
        pytest.skip(f'face-api models not converted ({exc}); run `make setup`')
    return create_face_detector(DetectorConfig()), create_face_landmarker(), create_face_embedder()


def test_converted_models_carry_their_provenance(networks):
    _, landmarker, embedder = networks
    for spec in (landmarker.spec, embedder.spec):
        assert spec.extra['source'].startswith(f'npm package {convert_face_api.PACKAGE} {convert_face_api.VERSION}')
        assert spec.extra['tarball_sha256'] == convert_face_api.TARBALL_SHA256
        assert 'MIT' in spec.extra['licence'] and len(spec.extra['weights_sha256']) == 64
    assert 'dlib' in embedder.spec.extra['licence']
    assert embedder.spec.model_id == f'face-api-recognition-128/{embedder.spec.extra["weights_sha256"][:16]}'
    with pytest.raises(ValueError, match='fer-convert-face-api'):
        EmbedderSpec.from_metadata({}, 'other.onnx')
    with pytest.raises(ValueError, match='invalid.*bogus'):
        LandmarkSpec.from_metadata({LandmarkSpec.METADATA_KEY: json.dumps({'size': 112, 'bogus': 1})}, 'x.onnx')


def test_landmarks_land_on_the_detected_face(networks):
    detector, landmarker, _ = networks
    astronaut = load_asset('astronaut.jpg')
    (face,) = detector.detect(astronaut)
    points = landmarker.locate(astronaut, [face.box])[0]
    x, y, w, h = face.box
    assert np.all((points[:, 0] > x - 0.2 * w) & (points[:, 0] < x + 1.2 * w))
    assert np.all((points[:, 1] > y - 0.2 * h) & (points[:, 1] < y + 1.2 * h))
    # the 68 points' eyes, nose and mouth corners agree with the detector's own five points
    error = np.linalg.norm(five_points(points) - face.landmarks, axis=1) / w
    assert error.max() < 0.08, error


def test_embeddings_tell_two_real_people_apart(networks):
    detector, landmarker, embedder = networks
    vectors = {}
    for name in ('astronaut.jpg', 'camera.jpg'):
        image = load_asset(name)
        for mirrored in (False, True):
            view = np.ascontiguousarray(image[:, ::-1]) if mirrored else image
            (face,) = detector.detect(view)
            vectors[name, mirrored] = embedder.embed(view, [face.box], landmarker.locate(view, [face.box]))[0]
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in vectors.values())
    same = [unit_distance(vectors[n, False], vectors[n, True][None])[0] for n in ('astronaut.jpg', 'camera.jpg')]
    other = unit_distance(vectors['astronaut.jpg', False], vectors['camera.jpg', False][None])[0]
    assert max(same) < 0.40 < other, (same, other)
