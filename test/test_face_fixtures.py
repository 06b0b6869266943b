"""The expression fixtures (assets/scared_face.jpg, fear_surprise_face.jpg, no_face.jpg) and STOP through
the real detector and classifier, without ROS: the fixtures read as the README says, a scared face stops
the robot with missed detections and a wobbling winner, and nothing in the repository's other photos
or its sample bag does."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from fer_ros.sample_frames import EXPRESSION_FIXTURES, NO_FACE, fixture_frame

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
SCARED, FEAR_SURPRISE = 'scared_face.jpg', 'fear_surprise_face.jpg'

pytestmark = pytest.mark.skipif(not os.path.isfile(DEFAULT_ONNX),
                                reason='models/mini_xception_fer2013.onnx not converted yet (make setup)')


def asset(name: str) -> np.ndarray:
    image = cv2.imread(os.path.join(REPO, 'assets', name), cv2.IMREAD_COLOR)
    assert image is not None, name
    return image


@pytest.fixture(scope='module')
def pipeline():
    from fer_ros.backends import create_pipeline
    from fer_ros.pipeline import PipelineConfig
    return create_pipeline(PipelineConfig(model_path=DEFAULT_ONNX, backend='cpu'))


@pytest.mark.parametrize('name', [*EXPRESSION_FIXTURES, NO_FACE])
def test_the_committed_fixture_is_what_the_code_makes(name):
    """JPEG encoding differs in the last bits between machines: compare pixels, not bytes."""
    committed = asset(name).astype(np.int16)
    made = fixture_frame(name).astype(np.int16)
    assert committed.shape == made.shape == (480, 640, 3)
    assert np.abs(committed - made).mean() < 2.0


def _crops(pipeline, frame, roi_steps=4):
    """The classifier's probabilities on the full-frame detection and on ``roi_steps`` ROI detections
    chained from it (the node alternates both)."""
    from fer_ros.backends import create_face_detector
    from fer_ros.pipeline import analyze_frame
    detector = create_face_detector(pipeline.config.detector)
    full = analyze_frame(frame, detector, pipeline.backend, pipeline.config.crop_margin, mirror=pipeline.mirror)
    assert len(full.detections) == 1
    rows, regions = [full.probabilities[0]], [full.detections[0].box]
    for _ in range(roi_steps):
        roi = analyze_frame(frame, detector, pipeline.backend, pipeline.config.crop_margin, regions,
                            mirror=pipeline.mirror)
        assert len(roi.detections) == 1
        rows.append(roi.probabilities[0])
        regions = [roi.detections[0].box]
    return np.stack(rows)


def test_the_scared_fixture_reads_scared_in_every_crop(pipeline):
    rows = _crops(pipeline, asset(SCARED))
    scared = pipeline.labels.index('scared')
    assert np.all(np.argmax(rows, axis=1) == scared), rows
    assert rows[:, scared].min() >= 0.6, rows[:, scared]          # measured 0.70-0.86; STOP's threshold is 0.45


def test_the_no_face_fixture_has_no_face(pipeline):
    """Nor in the ROI windows the node searches after a scared frame: the STOP tests' missed detections
    are misses whatever box the tracker holds (the background alone failed this: its cup read as a face in
    115 of 245 windows within 3 px of the tracked box)."""
    from fer_ros.backends import create_face_detector
    detector = create_face_detector(pipeline.config.detector)
    frame = asset(NO_FACE)
    assert detector.detect(frame) == []
    (x, y, w, h), = [d.box for d in detector.detect(asset(SCARED))]
    shifts = range(-12, 13, 4)
    found = [(dx, dy, dw) for dx in shifts for dy in shifts for dw in (-20, 0, 20)
             if detector.detect(frame, regions=[(x + dx, y + dy, w + dw, h + dw)])]
    assert found == []


def stream(pipeline, pattern: list[str], seconds: float, rate: float = 30.0, camera: str = 'cam'):
    """Frames of ``pattern`` (fixture names, repeated) at ``rate`` through a fresh pipeline state.
    Returns (changes [(seconds from the first frame, command)], raw winners of the frames with a face)."""
    frames = {name: asset(name) for name in set(pattern)}
    pipeline.reset(keep_command=False)
    changes, winners = [], []
    for i in range(int(seconds * rate)):
        result = pipeline.process(frames[pattern[i % len(pattern)]], 10_000.0 + i / rate, camera=camera)
        changes += [(i / rate, c.command) for c in result.commands if not c.heartbeat]
        winners += [pipeline.labels[int(np.argmax(f.raw_probabilities))] for f in result.faces]
    return changes, winners


@pytest.mark.parametrize('rate', [30.0, 10.0])
@pytest.mark.parametrize('pattern', [
    [SCARED],
    [SCARED, SCARED, NO_FACE],              # 1 frame in 3 without the face
    [SCARED, NO_FACE],                      # every other frame
], ids=['clean', 'blank_1_in_3', 'blank_1_in_2'])
def test_a_scared_face_stops_the_robot_within_the_stated_bound(pipeline, pattern, rate):
    """STOP within confirm_s + one frame of the face's first frame (docs/commands.md), at 30 and 10 Hz,
    whether or not the detector misses it in some frames."""
    confirm_s = pipeline.command_config.commands['STOP'].confirm_s
    changes, winners = stream(pipeline, pattern, 3.0, rate)
    assert set(winners) == {'scared'}
    stops = [t for t, c in changes if c == 'STOP']
    assert stops and stops[0] <= confirm_s + 1 / rate + 1e-6, changes
    assert [c for _, c in changes] == ['STOP']                   # and nothing else for 3 s


@pytest.mark.slow
@pytest.mark.parametrize('pattern', [[SCARED, FEAR_SURPRISE], [SCARED] * 3 + [FEAR_SURPRISE]], ids=['1:1', '3:1'])
def test_a_wobbling_winner_stops_the_robot_and_keeps_it_stopped(pipeline, pattern):
    """scared_face and fear_surprise_face in turn: the classifier's winner changes between them (so the
    argmax never stays scared), fear stays high: STOP, and no release during 10 s of it."""
    confirm_s = pipeline.command_config.commands['STOP'].confirm_s
    changes, winners = stream(pipeline, pattern, 10.0)
    # the winner does wobble (the fixture is a near-tie: a frame may even read neutral or sad, depending on
    # the ROI box to the pixel, which only makes holding STOP harder)
    assert {'scared', 'surprised'} <= set(winners), winners
    assert changes and changes[0][1] == 'STOP' and changes[0][0] <= confirm_s + 2 / 30, changes
    assert [c for _, c in changes] == ['STOP'], changes


@pytest.mark.slow
@pytest.mark.parametrize('frames', ['sample_frames', 'photos', 'sample_bag'])
def test_no_stop_from_the_repository_s_other_faces(pipeline, frames):
    """The smiling astronaut, the calm cameraman (he reads partly scared and angry at rest: 0.83-0.96 of a
    STOP unit, below the 1.0 that starts STOP), the sample frames with 1-12 faces and the sample bag."""
    from fer_ros.evaluation.bag_io import BagReader
    from fer_ros.io.image_codec import decode_message
    from fer_ros.sample_frames import sample_frame
    if frames == 'sample_frames':
        runs = [[sample_frame(n, seed=seed)[0]] * 30 for n in (1, 2, 3, 5, 8, 12) for seed in range(3)]
    elif frames == 'photos':
        runs = [[asset(name)] * 60 for name in ('astronaut.jpg', 'camera.jpg')]
    else:
        with BagReader(os.path.join(REPO, 'assets', 'sample_bag', 'fer_sample')) as reader:
            runs = [[decode_message(m.msg) for m in reader.messages(['/camera/image_raw/compressed'])]]
    for k, run in enumerate(runs):
        pipeline.reset(keep_command=False)
        for i, frame in enumerate(run):
            result = pipeline.process(frame, 20_000.0 + i / 30, camera=f'{frames}{k}')
            assert not [c for c in result.commands if c.command == 'STOP'], (frames, k, i)
