"""The benchmark scripts' own logic (make bench): what they choose to measure."""
from __future__ import annotations

import os

import pytest

from fer_ros.backends.onnxruntime_backend import read_onnx_metadata
from fer_ros.core.spec import ModelSpec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORKS = [os.path.join(REPO, 'models', name) for name in
            ('face_detector_libfacedetection.onnx', 'face_landmarks_face_api.onnx', 'face_embedder_face_api.onnx')]


@pytest.mark.skipif(not all(os.path.isfile(p) for p in NETWORKS), reason='models not converted yet (make setup)')
def test_the_classifier_part_times_only_classifiers():
    """models/ also holds the detector and the people networks: timing them as classifiers crashed `make bench`
    at its end (the embedder has no classifier spec)."""
    from benchmarks.perception import classifier_targets
    targets = classifier_targets([])
    assert targets, 'the default classifier at least'
    for path, _ in targets:
        if path.endswith('.onnx'):
            assert ModelSpec.METADATA_KEY in read_onnx_metadata(path), path
    assert not {os.path.realpath(p) for p in NETWORKS} & {os.path.realpath(p) for p, _ in targets}
