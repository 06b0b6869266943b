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
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.perception.tracking import TrackerConfig, box_iou
from fer_ros.pipeline import PipelineConfig
from fer_ros.sample_frames import FACE_SOURCES, background, paste_face, sample_frame

from pipelines import build, stateless

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
STAGES = {'detect', 'preprocess', 'infer', 'track', 'total', 'people'}

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
    pipeline = build(PipelineConfig(model_path=DEFAULT_ONNX), counting)
    assert pipeline.backend_name == 'cpu' and pipeline.detector_name == 'yunet'
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
    rows = 2 if pipeline.mirror else 1                # mirror TTA: each face and its mirror in one batch
    assert counting.calls == [rows] * 3
    # the command clock runs without frames: nothing while the face is fresh, HOLD once it is gone
    # for longer than hold_timeout_s
    assert pipeline.tick(0.2) == []
    hold = pipeline.command_config.hold_timeout_s
    assert [c.command for c in pipeline.tick(2 / 30 + hold + 0.5)] == ['HOLD']


def test_five_faces_go_through_one_inference_call(counting):
    pipeline = build(PipelineConfig(model_path=DEFAULT_ONNX, tracker=TrackerConfig(min_hits=1)), counting)
    frame, boxes = sample_frame(5)
    result = pipeline.process(frame, 0.0)
    assert result.num_detections == 5 and len(result.faces) == 5
    assert counting.calls == [5 * (2 if pipeline.mirror else 1)]   # one call (mirrors in the same batch)
    assert len({f.face_id for f in result.faces}) == 5


def test_frames_without_faces_skip_inference(counting):
    pipeline = build(PipelineConfig(model_path=DEFAULT_ONNX), counting)
    result = pipeline.process(sample_frame(0)[0], 0.0)
    assert result.faces == [] and result.num_detections == 0 and counting.calls == []
    assert result.timing_ms['infer'] == 0.0


def test_reset_forgets_tracks():
    pipeline = build(PipelineConfig(model_path=DEFAULT_ONNX))
    frame, _ = sample_frame(1)
    pipeline.process(frame, 0.0)
    before = pipeline.process(frame, 0.1).faces[0].face_id
    pipeline.reset()
    assert pipeline.process(frame, 0.2).faces == []                 # a new, tentative track
    assert pipeline.process(frame, 0.3).faces[0].face_id != before


def test_detector_settings_change_at_run_time():
    pipeline = build(PipelineConfig(model_path=DEFAULT_ONNX, tracker=TrackerConfig(min_hits=1)))
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
        PipelineConfig(backend='openvino')
    with pytest.raises(ValueError, match='crop_margin'):
        PipelineConfig(crop_margin=-0.1)
    with pytest.raises(ValueError, match='detector'):
        PipelineConfig(detector='yuface')
    with pytest.raises(FileNotFoundError):
        build(PipelineConfig(model_path=DEFAULT_ONNX, commands_path='/no/such/commands.yaml'))
    pipeline = build(PipelineConfig(model_path=DEFAULT_ONNX))
    with pytest.raises(ValueError, match='uint8'):
        pipeline.process(np.zeros((480, 640), np.uint8), 0.0)


# --- ROI-assisted detection ----------------------------------------------------------------------------

def roi_pipeline(backend=None, **detector):
    return build(PipelineConfig(model_path=DEFAULT_ONNX, detector=DetectorConfig(**detector)), backend)


@pytest.mark.parametrize('num_faces', [1, 5])
def test_roi_mode_alternates_and_keeps_faces_and_ids(counting, num_faces):
    pipeline = roi_pipeline(counting, full_scan_s=5 / 30, idle_scan_s=0.0)      # the scene-change gate off
    frame, _ = sample_frame(num_faces, seed=1)
    full_boxes = [d.box for d in stateless(pipeline, frame).detections]     # stateless full-frame detection
    modes, ids = [], []
    for i in range(20):
        result = pipeline.process(frame, i / 30)
        modes.append(result.detect_mode)
        assert result.num_detections == num_faces
        if i >= 1:                                                       # confirmed after min_hits = 2
            ids.append([f.face_id for f in result.faces])
            assert box_iou(full_boxes, [f.box for f in result.faces]).max(axis=1).min() >= 0.7
    assert modes == ['full', 'roi', 'roi', 'roi', 'roi'] * 4
    assert len(set(map(tuple, ids))) == 1 and len(ids[0]) == num_faces
    assert counting.calls == [num_faces * (2 if pipeline.mirror else 1)] * 21   # one batched call per frame


def test_a_new_face_is_found_at_the_next_full_scan():
    pipeline = roi_pipeline(full_scan_s=5 / 30)
    one = background().copy()
    paste_face(one, FACE_SOURCES[0], (160, 240), 120)
    two = one.copy()
    paste_face(two, FACE_SOURCES[0], (480, 240), 120, mirror=True)
    found = []
    for i in range(12):
        result = pipeline.process(one if i < 2 else two, i / 30)       # the 2nd face enters at frame 2
        found.append((result.detect_mode, result.num_detections))
    # frames 2-4 search only around the first face; the full scan at frame 5 finds the newcomer
    assert found[:6] == [('full', 1), ('roi', 1), ('roi', 1), ('roi', 1), ('roi', 1), ('full', 2)]
    assert all(n == 2 for _, n in found[6:])
    assert len(pipeline.process(two, 12 / 30).faces) == 2              # both tracked (roi frame)


def test_a_moving_face_is_followed_in_roi_mode():
    pipeline = roi_pipeline(full_scan_s=10 / 30)
    height = 100
    ids = []
    for i in range(10):
        frame = background().copy()
        # a quarter of the face height per frame, diagonally (about 1.5 m/s at 1 m and 30 fps)
        box = paste_face(frame, FACE_SOURCES[1], (150 + 25 * i, 150 + 10 * i), height)
        result = pipeline.process(frame, i / 30)
        assert result.detect_mode == ('full' if i == 0 else 'roi')
        assert result.num_detections == 1
        if i >= 1:
            assert box_iou([box], [result.faces[0].box])[0, 0] > 0.6
            ids.append(result.faces[0].face_id)
    assert len(set(ids)) == 1


def test_full_scan_every_frame_is_the_stateless_analysis():
    # every frame: the whole-frame detection, exactly what the stateless analyze_frame() gives
    pipeline = build(PipelineConfig(model_path=DEFAULT_ONNX, tracker=TrackerConfig(min_hits=1),
                                       detector=DetectorConfig(full_scan_s=0.0)))
    for i, frame in enumerate(sample_frame(5, seed=s)[0] for s in (0, 0, 1, 1, 0)):
        result = pipeline.process(frame, i / 30)
        expected = stateless(pipeline, frame)
        assert result.detect_mode == 'full' and result.num_detections == 5
        by_box = {d.box: p for d, p in zip(expected.detections, expected.probabilities)}
        assert len(result.faces) == 5
        for face in result.faces:
            # same batch through the same runtime; a tolerance, not bit equality, in case the runtime's
            # threads split the work differently between the two calls
            np.testing.assert_allclose(face.raw_probabilities, by_box[face.box], rtol=0, atol=1e-6)


def test_scan_interval_changes_at_run_time_and_reset_rescans():
    pipeline = roi_pipeline(full_scan_s=5 / 30)
    frame, _ = sample_frame(1)
    modes = [pipeline.process(frame, i / 30).detect_mode for i in range(3)]
    pipeline.set_detector_config(DetectorConfig(full_scan_s=0.0))
    modes += [pipeline.process(frame, (3 + i) / 30).detect_mode for i in range(2)]
    pipeline.set_detector_config(DetectorConfig(full_scan_s=5 / 30))
    modes += [pipeline.process(frame, (5 + i) / 30).detect_mode for i in range(2)]
    pipeline.reset()                                                   # without it: roi
    modes.append(pipeline.process(frame, 7 / 30).detect_mode)
    assert modes == ['full', 'roi', 'roi', 'full', 'full', 'roi', 'roi', 'full']


def test_haar_pipeline_uses_roi_mode_too():
    pipeline = roi_pipeline(kind='haar', full_scan_s=3 / 30, idle_scan_s=0.0)   # the scene-change gate off
    frame, _ = sample_frame(1, seed=0)
    results = [pipeline.process(frame, i / 30) for i in range(6)]
    assert [r.detect_mode for r in results] == ['full', 'roi', 'roi'] * 2
    assert [r.num_detections for r in results] == [1] * 6


def test_reset_keeps_the_command_in_force():
    # a clock jump resets the pipeline: tracks go, but a latched command (here HOLD: no face for
    # hold_timeout_s) stays, so its heartbeat goes on
    pipeline = build(PipelineConfig(model_path=DEFAULT_ONNX))
    empty = sample_frame(0)[0]
    issued = [c.command for i in range(7) for c in pipeline.process(empty, i * 0.5).commands]
    assert 'HOLD' in issued
    pipeline.reset()
    beats = [c for t in (3.6, 4.0, 4.7) for c in pipeline.tick(t)]
    assert [(c.command, c.heartbeat) for c in beats] == [('HOLD', True)]


RUNTIME_IMPORTS = r'''
import json, sys
from fer_ros.pipeline import PipelineConfig
from fer_ros.backends import create_pipeline
from fer_ros.sample_frames import sample_frame
import fer_ros.tools.infer
pipeline = create_pipeline(PipelineConfig(model_path=sys.argv[1], backend='cpu'))
result = pipeline.process(sample_frame(1)[0], 0.0)
print(json.dumps({'backend': pipeline.backend_name, 'detections': result.num_detections,
                  'torch': sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))}))
'''


def test_runtime_path_never_imports_torch():
    out = subprocess.run([sys.executable, '-c', RUNTIME_IMPORTS, DEFAULT_ONNX], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {'backend': 'cpu', 'detections': 1, 'torch': []}


def relabelled_model(tmp_path, labels) -> str:
    """The default model with other class names in its metadata (a real model file as another
    exporter would write it)."""
    import onnx

    from fer_ros.core.spec import METADATA_KEY, ModelSpec
    proto = onnx.load(DEFAULT_ONNX)
    entry = next(p for p in proto.metadata_props if p.key == METADATA_KEY)
    spec = ModelSpec.from_json(entry.value)
    entry.value = ModelSpec(**{**spec.__dict__, 'labels': tuple(labels)}).to_json()
    path = tmp_path / 'relabelled.onnx'
    onnx.save(proto, str(path))
    return str(path)


def test_label_spellings_are_made_canonical(tmp_path):
    fer_words = ('anger', 'disgust', 'fear', 'happiness', 'sadness', 'surprise', 'neutral')
    pipeline = build(PipelineConfig(model_path=relabelled_model(tmp_path, fer_words), backend='cpu'))
    assert pipeline.labels == ('angry', 'disgusted', 'scared', 'happy', 'sad', 'surprised', 'neutral')
    frame, _ = sample_frame(1)
    assert pipeline.process(frame, 0.0).labels == pipeline.labels


def test_a_model_with_an_unknown_label_is_refused_at_start(tmp_path):
    words = ('angry', 'contempt', 'scared', 'happy', 'sad', 'surprised', 'neutral')
    with pytest.raises(ValueError, match=r"labels \['angry', 'contempt', .*\] contain \['contempt'\]"):
        build(PipelineConfig(model_path=relabelled_model(tmp_path, words), backend='cpu'))


class CountingLandmarker:
    """The pipeline's real landmarker, recording how many faces each call located."""

    def __init__(self, real) -> None:
        self.real, self.calls = real, []

    def locate(self, bgr, boxes):
        self.calls.append(len(boxes))
        return self.real.locate(bgr, boxes)


def test_five_faces_landmarks_are_spread_over_the_frames():
    """Five faces found together: all located at once on the first frame (nothing to follow their boxes
    with), then refreshed one per frame at 30 Hz (5 x 1/30 s < landmark_interval_s 0.2 s), not all five on
    one frame every 0.2 s; each face still refreshed about every interval."""
    pipeline = build(PipelineConfig(model_path=DEFAULT_ONNX, tracker=TrackerConfig(min_hits=1)))
    if pipeline.landmarker is None:
        pytest.skip('the landmark network is not converted (make setup)')
    pipeline.landmarker = counting = CountingLandmarker(pipeline.landmarker)
    frame, _ = sample_frame(5)
    refreshed: dict[str, list[float]] = {}
    for i in range(31):                                   # 1 s at 30 Hz
        faces = pipeline.process(frame, i / 30).faces
        assert len(faces) == 5 and all(f.face_points is not None and f.head_pose is not None for f in faces)
        for face_id, (when, _, _) in pipeline._located.items():
            refreshed.setdefault(face_id, [])
            if when not in refreshed[face_id]:
                refreshed[face_id].append(when)
    assert counting.calls[0] == 5 and max(counting.calls[1:]) == 1
    for times in refreshed.values():                      # every face refreshed, at most 5 frames late
        gaps = np.diff(times)
        assert len(times) >= 4 and gaps.max() <= 0.2 + 5 / 30 + 1e-6, times
