"""Per-face neutral baselines (ROS-free): collection, the bounded log-space correction, STOP safety, clearing."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.hri.neutral_baseline import NeutralBaselineConfig, NeutralBaselines, apply_weights, baseline_weights

LABELS = EXPRESSIONS                     # angry, disgusted, scared, happy, sad, surprised, neutral
K = {name: i for i, name in enumerate(LABELS)}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')


def probs(**named) -> np.ndarray:
    p = np.full(len(LABELS), 0.0, np.float32)
    for name, value in named.items():
        p[K[name]] = value
    rest = 1.0 - p.sum()
    p[p == 0] = rest / max(1, int((p == 0).sum()))
    return p


# the cameraman at rest, as the FER2013 model reads him: sad ahead of neutral
RESTING = probs(sad=0.45, neutral=0.30, angry=0.10, scared=0.05)


GUARDS = {'scared': 0.45, 'angry': 0.55}      # the default commands.yaml's min_confidence


def calibrated(face_id='f1', resting=RESTING, frames=10, config=NeutralBaselineConfig(), protected=GUARDS):
    baselines = NeutralBaselines(config, LABELS, protected)
    baselines.request(face_id)
    for i in range(frames):
        baselines.observe(face_id, resting, i * 0.5)
        baselines.end_frame(i * 0.5, [face_id])
    return baselines


def test_the_resting_face_reads_neutral_after_calibration():
    baselines = calibrated()
    assert baselines.baseline('f1') is not None and not baselines.collecting
    corrected = baselines.correct('f1', RESTING)
    assert LABELS[int(np.argmax(corrected))] == 'neutral'
    assert corrected[K['neutral']] >= 1.5 * corrected[K['sad']] * 0.999          # neutral_lead
    assert abs(float(corrected.sum()) - 1) < 1e-5


def test_other_faces_and_uncalibrated_faces_are_untouched():
    baselines = calibrated()
    assert np.allclose(baselines.correct('f2', RESTING), RESTING)


def test_a_real_expression_still_wins_within_the_bound():
    baselines = calibrated()
    sad_apex = probs(sad=0.80, neutral=0.10)
    corrected = baselines.correct('f1', sad_apex)
    assert LABELS[int(np.argmax(corrected))] == 'sad'
    weights = baselines.baseline('f1').weights
    assert float(weights.max()) <= math.log(4.0) + 1e-6


@pytest.mark.parametrize('seed', range(40))
def test_stop_classes_at_their_guard_are_never_lowered(seed):
    """Whatever the resting face and the frame: a STOP class at or above its guard level only goes up,
    and a STOP winner stays the winner."""
    rng = np.random.default_rng(seed)
    resting = rng.dirichlet(np.full(len(LABELS), 0.5)).astype(np.float32)
    frame = rng.dirichlet(np.full(len(LABELS), 0.3)).astype(np.float32)
    if seed % 2:
        frame[K['scared']] += 0.5                       # half the frames show a STOP class
        frame /= frame.sum()
    baselines = calibrated(resting=resting, config=NeutralBaselineConfig(max_shift=5.0, neutral_lead=4.0))
    corrected = baselines.correct('f1', frame)
    for name, guard in GUARDS.items():
        if frame[K[name]] >= guard:
            assert corrected[K[name]] >= frame[K[name]] * (1 - 1e-6)
            if LABELS[int(np.argmax(frame))] in GUARDS:
                assert int(np.argmax(corrected)) == int(np.argmax(frame))
    assert corrected[K['neutral']] >= frame[K['neutral']] * (1 - 1e-6)


def test_a_resting_face_below_the_guards_is_corrected_for_stop_classes_too():
    """The cameraman with the aligned crop: sad 0.43, angry 0.27, scared 0.13, neutral 0.16."""
    resting = probs(sad=0.43, angry=0.27, scared=0.13, neutral=0.16)
    corrected = calibrated(resting=resting).correct('f1', resting)
    assert LABELS[int(np.argmax(corrected))] == 'neutral'


def test_a_resting_face_that_reads_as_a_stop_class_is_not_corrected_and_says_so():
    angry_rest = probs(angry=0.6, neutral=0.2)
    baselines = calibrated(resting=angry_rest)
    assert np.allclose(baselines.correct('f1', angry_rest)[K['angry']], angry_rest[K['angry']], atol=0.05)
    assert LABELS[int(np.argmax(baselines.correct('f1', angry_rest)))] == 'angry'
    assert 'STOP class' in baselines.status()['neutral_baseline_f1']


def test_weights_formula():
    config = NeutralBaselineConfig(max_shift=math.log(4.0), neutral_lead=1.5)
    w = baseline_weights(RESTING, LABELS, config)
    assert w[K['neutral']] == 0
    assert w[K['angry']] == 0.0                          # 0.10 at rest: below neutral / 1.5
    assert w[K['sad']] == pytest.approx(math.log(0.45 / 0.30 * 1.5), rel=1e-4)
    assert w[K['happy']] == 0.0                          # 0.033 at rest: far below neutral / 1.5
    assert np.allclose(apply_weights(RESTING, np.zeros(7)), RESTING)


def test_collection_needs_enough_frames_and_the_face_in_view():
    baselines = calibrated(frames=3, config=NeutralBaselineConfig(duration_s=1.0, min_samples=5))
    assert baselines.baseline('f1') is None and 'too few frames' in baselines.last_result
    gone = NeutralBaselines(NeutralBaselineConfig(duration_s=1.0), LABELS)
    gone.request('f7')
    for i in range(5):
        gone.observe('f1', RESTING, i * 0.5)
        gone.end_frame(i * 0.5, ['f1'])
    assert 'f7 not seen' in gone.last_result and gone.baseline('f1') is None


def test_calibrating_every_face_in_view_and_clearing():
    baselines = NeutralBaselines(NeutralBaselineConfig(duration_s=1.0, min_samples=2), LABELS)
    assert 'every face' in baselines.request()
    for i in range(4):
        for face in ('f1', 'f2'):
            baselines.observe(face, RESTING, i * 0.5)
        baselines.end_frame(i * 0.5, ['f1', 'f2'])
    assert baselines.status()['neutral_baselines'] == 'f1 f2'
    assert baselines.clear('f2') == ['f2'] and baselines.clear('f9') == []
    assert baselines.clear() == ['f1'] and baselines.status()['neutral_baselines'] == 'none'


def test_a_baseline_ends_with_its_track():
    baselines = calibrated()
    baselines.end_frame(20.0, ['f3'])
    assert baselines.baseline('f1') is None


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match='max_shift'):
        NeutralBaselineConfig(max_shift=-1)
    with pytest.raises(ValueError, match='duration_s'):
        NeutralBaselines(NeutralBaselineConfig(), LABELS).request('f1', 100.0)
    with pytest.raises(ValueError, match='neutral'):
        NeutralBaselines(NeutralBaselineConfig(), ('happy', 'sad'))


@pytest.mark.skipif(not os.path.isfile(DEFAULT_ONNX), reason='default model not converted (make setup)')
def test_the_cameraman_reads_neutral_after_calibrating_the_pipeline():
    """The real pipeline on assets/camera.jpg (the cameraman reads sad at rest with the FER2013 model)."""
    import cv2

    from fer_ros.backends import create_pipeline
    from fer_ros.pipeline import PipelineConfig

    pipeline = create_pipeline(PipelineConfig(model_path=DEFAULT_ONNX))
    frame = cv2.imread(os.path.join(REPO, 'assets', 'camera.jpg'))
    stamp = 0.0
    for _ in range(3):
        result = pipeline.process(frame, stamp)
        stamp += 0.1
    before = result.faces[0]
    pipeline.neutral.request(before.face_id, 1.0)
    while pipeline.neutral.collecting:
        result = pipeline.process(frame, stamp)
        stamp += 0.1
    for _ in range(15):                                     # let the smoothing settle
        result = pipeline.process(frame, stamp)
        stamp += 0.1
    after = result.faces[0]
    assert after.face_id == before.face_id and after.expression == 'neutral'
    assert 'neutral_baseline_' + before.face_id in pipeline.neutral.status()


@pytest.mark.parametrize('seed', range(6))
def test_stop_is_commanded_on_the_same_frame_with_and_without_a_baseline(seed):
    """Tracker + smoothing + command mapper with the packaged commands.yaml: whatever the person's
    baseline (even one learned from a scared-looking rest), a scared face gives STOP when it would
    have without calibration, at the same stamp."""
    from fer_ros.core.types import Detection
    from fer_ros.hri.command_config import load_command_config
    from fer_ros.hri.commands import CommandMapper
    from fer_ros.perception.smoothing import SmoothingConfig
    from fer_ros.perception.tracking import FaceTracker, TrackerConfig
    from fer_ros.pipeline import stop_guards

    rng = np.random.default_rng(seed)
    commands = load_command_config(None)
    resting = rng.dirichlet(np.full(len(LABELS), 0.4)).astype(np.float32)
    scared_rows = [probs(scared=float(rng.uniform(0.5, 0.9)), neutral=0.05) for _ in range(15)]
    first_stop = []
    for calibrate in (False, True):
        tracker = FaceTracker(TrackerConfig(min_hits=1), SmoothingConfig(), LABELS)
        mapper = CommandMapper(commands)
        config = NeutralBaselineConfig(min_samples=3, duration_s=0.2)
        baselines = NeutralBaselines(config, LABELS, stop_guards(commands))
        tracker.observe, tracker.correct = baselines.observe, baselines.correct
        face = [Detection(box=(100.0, 100.0, 80.0, 80.0), score=0.9)]
        stamp, stop_at = 0.0, None
        if calibrate:
            baselines.request()
        for row in [resting] * 5 + scared_rows:
            faces = tracker.update(face, row[None, :], stamp)
            baselines.end_frame(stamp, tracker.face_ids)
            if any(c.command == 'STOP' for c in mapper.update(faces, stamp)) and stop_at is None:
                stop_at = stamp
            stamp += 0.1
        assert not calibrate or baselines.baseline('f1') is not None
        first_stop.append(stop_at)
    assert first_stop[0] is not None and first_stop[1] is not None
    assert first_stop[1] <= first_stop[0] + 1e-9
