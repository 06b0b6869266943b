"""The Pipeline end to end on real faces: detection, one batched inference per frame, tracking, timing.

Also checks that the run-time path (pipeline, ONNX Runtime backend, fer-infer) never imports torch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from fer_ros.core.detection import DetectorConfig
from fer_ros.core.pipeline import Pipeline, PipelineConfig
from fer_ros.core.sample_frames import sample_frame
from fer_ros.core.tracking import TrackerConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
STAGES = {'detect', 'preprocess', 'infer', 'track', 'total'}

pytestmark = pytest.mark.skipif(not os.path.isfile(DEFAULT_ONNX),
                                reason='models/mini_xception_fer2013.onnx not converted yet (make setup)')


class CountingBackend(OnnxRuntimeBackend):
    """The real ONNX Runtime backend, recording the batch size of every call."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.calls: list[int] = []

    def infer(self, batch):
        self.calls.append(len(batch))
        return super().infer(batch)


@pytest.fixture()
def counting():
    return CountingBackend(DEFAULT_ONNX)


def test_one_face_is_tracked_and_classified(counting):
    pipeline = Pipeline(PipelineConfig(model_path=DEFAULT_ONNX), backend=counting)
    assert pipeline.backend_name == 'onnxruntime' and pipeline.detector_name == 'yuface'
    assert pipeline.labels == pipeline.spec.labels
    frame, boxes = sample_frame(1)
    first = pipeline.process(frame, 0.0)
    assert first.num_detections == 1 and first.faces == []          # tentative until min_hits (2) frames
    second = pipeline.process(frame, 1 / 30)
    assert [f.face_id for f in second.faces] == [f.face_id for f in pipeline.process(frame, 2 / 30).faces]
    face = second.faces[0]
    assert face.expression == 'happy' and face.confidence > 0.9      # the smiling astronaut
    assert face.probabilities.shape == (7,) and abs(float(face.probabilities.sum()) - 1) < 1e-4
    assert -1 <= face.valence <= 1 and face.valence > 0
    assert set(second.timing_ms) == STAGES and all(v >= 0 for v in second.timing_ms.values())
    assert second.timing_ms['total'] >= second.timing_ms['detect'] + second.timing_ms['infer']
    assert second.labels == pipeline.labels and second.stamp == pytest.approx(1 / 30)
    assert counting.calls == [1, 1, 1]
    assert isinstance(pipeline.tick(0.2), list)


def test_five_faces_go_through_one_inference_call(counting):
    pipeline = Pipeline(PipelineConfig(model_path=DEFAULT_ONNX, tracker=TrackerConfig(min_hits=1)), backend=counting)
    frame, boxes = sample_frame(5)
    result = pipeline.process(frame, 0.0)
    assert result.num_detections == 5 and len(result.faces) == 5
    assert counting.calls == [5]
    assert len({f.face_id for f in result.faces}) == 5


def test_frames_without_faces_skip_inference(counting):
    pipeline = Pipeline(PipelineConfig(model_path=DEFAULT_ONNX), backend=counting)
    result = pipeline.process(sample_frame(0)[0], 0.0)
    assert result.faces == [] and result.num_detections == 0 and counting.calls == []
    assert result.timing_ms['infer'] == 0.0


def test_reset_forgets_tracks():
    pipeline = Pipeline(PipelineConfig(model_path=DEFAULT_ONNX))
    frame, _ = sample_frame(1)
    pipeline.process(frame, 0.0)
    before = pipeline.process(frame, 0.1).faces[0].face_id
    pipeline.reset()
    assert pipeline.process(frame, 0.2).faces == []                 # a new, tentative track
    assert pipeline.process(frame, 0.3).faces[0].face_id != before


def test_detector_settings_change_at_run_time():
    pipeline = Pipeline(PipelineConfig(model_path=DEFAULT_ONNX, tracker=TrackerConfig(min_hits=1)))
    frame, _ = sample_frame(3)
    assert pipeline.process(frame, 0.0).num_detections == 3
    pipeline.set_detector_config(DetectorConfig(max_faces=1))
    assert pipeline.process(frame, 0.1).num_detections == 1
    pipeline.set_detector_config(DetectorConfig(kind='haar'))
    assert pipeline.detector_name == 'haar'
    with pytest.raises(ValueError, match='DetectorConfig'):
        pipeline.set_detector_config({'kind': 'haar'})


def test_config_and_input_errors():
    with pytest.raises(ValueError, match='backend'):
        PipelineConfig(backend='cuda')
    with pytest.raises(ValueError, match='crop_margin'):
        PipelineConfig(crop_margin=-0.1)
    with pytest.raises(ValueError, match='detector'):
        PipelineConfig(detector='yuface')
    with pytest.raises(FileNotFoundError):
        Pipeline(PipelineConfig(model_path=DEFAULT_ONNX, commands_path='/no/such/commands.yaml'))
    pipeline = Pipeline(PipelineConfig(model_path=DEFAULT_ONNX))
    with pytest.raises(ValueError, match='uint8'):
        pipeline.process(np.zeros((480, 640), np.uint8), 0.0)


RUNTIME_IMPORTS = r'''
import json, sys
from fer_ros.core.pipeline import Pipeline, PipelineConfig
from fer_ros.backends import create_backend
from fer_ros.core.sample_frames import sample_frame
import fer_ros.tools.infer
pipeline = Pipeline(PipelineConfig(model_path=sys.argv[1], backend='onnxruntime'))
result = pipeline.process(sample_frame(1)[0], 0.0)
print(json.dumps({'backend': pipeline.backend_name, 'detections': result.num_detections,
                  'torch': sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))}))
'''


def test_runtime_path_never_imports_torch():
    out = subprocess.run([sys.executable, '-c', RUNTIME_IMPORTS, DEFAULT_ONNX], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {'backend': 'onnxruntime', 'detections': 1, 'torch': []}
