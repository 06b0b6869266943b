"""Face tracking: stable ids, publication after min_hits, coasting for coast_s seconds, hand-over between
faces, per-track smoothing, what the command mapper is given."""
from __future__ import annotations

import numpy as np
import pytest

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.core.types import COASTING, TENTATIVE, TRACKED, Detection
from fer_ros.perception.smoothing import SmoothingConfig, circumplex_matrix, circumplex_point
from fer_ros.perception.tracking import FaceTracker, TrackerConfig, box_iou

K = len(EXPRESSIONS)
DT = 1 / 30


def probs(expression: str = 'neutral', confidence: float = 0.8) -> np.ndarray:
    p = np.full(K, (1 - confidence) / (K - 1), dtype=np.float32)
    p[EXPRESSIONS.index(expression)] = confidence
    return p


class Scene:
    """Drives a tracker frame by frame with boxes (x, y, w, h) and expressions."""

    def __init__(self, config: TrackerConfig | None = None, smoothing: SmoothingConfig | None = None) -> None:
        self.tracker = FaceTracker(config or TrackerConfig(), smoothing or SmoothingConfig(), EXPRESSIONS)
        self.t = 0.0

    def frame(self, faces: list[tuple[tuple[float, float, float, float], str]], dt: float = DT):
        self.t += dt
        detections = [Detection(box=tuple(float(v) for v in box), score=0.9) for box, _ in faces]
        p = np.stack([probs(e) for _, e in faces]) if faces else np.zeros((0, K), np.float32)
        return self.tracker.update(detections, p, self.t)

    def ids(self, faces, dt: float = DT) -> list[str]:
        return [r.face_id for r in self.frame(faces, dt)]


@pytest.mark.parametrize('kwargs,match', [
    ({'iou_threshold': 1.5}, r'TrackerConfig\.iou_threshold'),
    ({'max_center_distance': -0.1}, r'TrackerConfig\.max_center_distance'),
    ({'min_hits': 0}, r'TrackerConfig\.min_hits'),
    ({'coast_s': -0.1}, r'TrackerConfig\.coast_s'),
    ({'coast_s': 11.0}, r'TrackerConfig\.coast_s'),
    ({'max_size_ratio': 0.5}, r'TrackerConfig\.max_size_ratio'),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrackerConfig(**kwargs)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match='no circumplex coordinates'):
        FaceTracker(TrackerConfig(), SmoothingConfig(), ('happy', 'contempt'))
    tracker = FaceTracker(TrackerConfig(), SmoothingConfig(), EXPRESSIONS)
    with pytest.raises(ValueError, match=r'shape \(1, 7\)'):
        tracker.update([Detection((0, 0, 10, 10), 0.9)], np.ones((2, K)) / K, 0.0)
    assert tracker.update([], np.zeros((0,)), 0.0) == []
    # a non-finite classifier output is refused before anything of the frame is applied
    tracker = FaceTracker(TrackerConfig(min_hits=1), SmoothingConfig(), EXPRESSIONS)
    face = Detection((0, 0, 10, 10), 0.9)
    first = tracker.update([face], probs('happy')[None, :], 0.0)[0]
    bad = probs('scared')[None, :].copy()
    bad[0, 2] = np.nan
    with pytest.raises(ValueError, match='non-finite'):
        tracker.update([Detection((50, 50, 10, 10), 0.9)], bad, 0.1)
    assert tracker.face_ids == ['f1'] and tracker.active_boxes() == [first.box]
    again = tracker.update([face], probs('happy')[None, :], 0.2)[0]
    assert again.face_id == 'f1' and np.allclose(again.probabilities, first.probabilities)


def test_box_iou():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_moving_face_keeps_its_id_and_is_published_after_min_hits():
    scene = Scene(TrackerConfig(min_hits=3))
    out = [scene.ids([((100 + 4 * i, 80 + 2 * i, 90, 90), 'happy')]) for i in range(60)]
    assert out[:2] == [[], []]                       # tentative for min_hits - 1 frames
    assert all(ids == ['f1'] for ids in out[2:])


def test_fast_face_without_overlap_is_kept_by_the_centre_distance_gate():
    # 40 px per frame with 60 px boxes: IoU drops to 0.2 (< 0.3) but centres move 0.67 box -> gate 0.75 keeps it
    scene = Scene(TrackerConfig(min_hits=1, max_center_distance=0.75))
    assert {tuple(scene.ids([((40 * i, 0, 60, 60), 'neutral')])) for i in range(10)} == {('f1',)}
    # the same motion with the distance gate off: every frame is a new face
    scene = Scene(TrackerConfig(min_hits=1, max_center_distance=0.0))
    ids = [scene.ids([((40 * i, 0, 60, 60), 'neutral')])[0] for i in range(5)]
    assert ids == ['f1', 'f2', 'f3', 'f4', 'f5']


def test_two_faces_keep_their_ids_whatever_the_detection_order():
    scene = Scene(TrackerConfig(min_hits=1))
    left, right = (50, 100, 80, 80), (400, 100, 80, 80)
    first = scene.frame([(left, 'happy'), (right, 'sad')])
    ids = {r.face_id: r.box for r in first}
    left_id = next(i for i, b in ids.items() if b[0] == 50)
    for i in range(30):
        l_box = (50 + i, 100, 80, 80)
        r_box = (400 - i, 100, 80, 80)
        faces = [(l_box, 'happy'), (r_box, 'sad')]
        results = scene.frame(faces[::-1] if i % 2 else faces)   # detector order changes
        assert [r.face_id for r in results] == ['f1', 'f2']      # sorted, both present
        by_id = {r.face_id: r for r in results}
        assert by_id[left_id].box[0] == 50 + i                   # the id follows the box ...
        assert by_id[left_id].expression == 'happy'              # ... and its probabilities


def test_missed_frames_are_tolerated_for_coast_s_seconds():
    face = ((100, 100, 80, 80), 'neutral')
    scene = Scene(TrackerConfig(min_hits=2, coast_s=0.12))
    for _ in range(5):
        scene.ids([face])
    for _ in range(3):                               # 3 frames at 30 Hz = 0.1 s
        assert scene.ids([]) == []                   # not detected: nothing published, track kept
    assert scene.ids([face]) == ['f1']               # back within coast_s: same id
    for _ in range(4):
        scene.ids([])                                # 0.13 s > coast_s: dropped at the 4th
    assert scene.ids([face]) == []                   # a new tentative track ...
    assert scene.ids([face]) == ['f2']               # ... published as a new face


def test_coasting_is_measured_in_seconds_not_frames():
    face = ((100, 100, 80, 80), 'neutral')
    for rate in (30.0, 5.0):
        scene = Scene(TrackerConfig(min_hits=1, coast_s=0.5))
        assert scene.ids([face], dt=1 / rate) == ['f1']
        for _ in range(int(0.45 * rate)):            # 0.45 s without a detection, in frames of this rate
            assert scene.ids([], dt=1 / rate) == []
        assert scene.ids([face], dt=1 / rate) == ['f1']
        for _ in range(int(0.6 * rate)):             # 0.6 s: dropped
            scene.ids([], dt=1 / rate)
        assert scene.ids([face], dt=1 / rate) == ['f2']


def test_zero_coast_drops_at_the_first_miss():
    face = ((100, 100, 80, 80), 'neutral')
    scene = Scene(TrackerConfig(min_hits=1, coast_s=0.0))
    assert scene.ids([face]) == ['f1']
    scene.ids([])
    assert scene.ids([face]) == ['f2']


def test_command_faces_add_tentative_and_coasting_faces():
    scene = Scene(TrackerConfig(min_hits=2, coast_s=0.5))
    a, b = ((100, 100, 80, 80), 'scared'), ((400, 100, 80, 80), 'happy')
    scene.frame([a])
    assert [(f.face_id, f.tracking) for f in scene.tracker.command_faces()] == [('f1', TENTATIVE)]
    published = scene.frame([a])
    assert [(f.face_id, f.tracking) for f in published] == [('f1', TRACKED)]
    assert scene.tracker.command_faces() == published
    state = published[0].probabilities
    # f1 missed, a new face f2 appears: f1 coasts with its last smoothed state, f2 is tentative
    assert scene.frame([b]) == []
    faces = scene.tracker.command_faces()
    assert [(f.face_id, f.tracking) for f in faces] == [('f1', COASTING), ('f2', TENTATIVE)]
    assert np.array_equal(faces[0].probabilities, state) and faces[0].expression == 'scared'
    # a missed tentative track is handed on too, as tentative (it cannot command before it is published)
    scene.frame([a])
    assert [(f.face_id, f.tracking) for f in scene.tracker.command_faces()] == [('f1', TRACKED), ('f2', TENTATIVE)]


def test_a_face_detected_every_other_frame_is_published():
    """Tentative tracks coast too: at a 50 % detection rate a new face is still published."""
    face = ((100, 100, 80, 80), 'neutral')
    scene = Scene(TrackerConfig(min_hits=2, coast_s=0.1))
    out = [scene.ids([face] if i % 2 == 0 else []) for i in range(8)]
    assert out[2] == ['f1'] and out[4] == ['f1'] and out[6] == ['f1']


def test_spurious_detection_is_never_published_and_its_id_never_reused():
    scene = Scene(TrackerConfig(min_hits=2, coast_s=0.1))
    face = ((100, 100, 80, 80), 'neutral')
    ghost = ((500, 300, 40, 40), 'angry')
    scene.ids([face])
    assert scene.ids([face, ghost]) == ['f1']        # ghost: tentative f2
    for _ in range(4):
        assert scene.ids([face]) == ['f1']           # ghost missed for longer than coast_s: gone
    assert scene.ids([face, ghost]) == ['f1']        # a new tentative track f3
    assert scene.ids([face, ghost]) == ['f1', 'f3']


def test_hand_over_one_person_leaves_another_arrives():
    scene = Scene(TrackerConfig(min_hits=2, coast_s=0.17))
    a = ((100, 100, 80, 80), 'happy')
    b = ((450, 120, 85, 85), 'sad')
    for _ in range(10):
        assert scene.ids([a]) in ([], ['f1'])
    # A leaves the view as B enters elsewhere: B must not inherit A's id, nor its smoothed expression
    assert scene.ids([b]) == []
    results = scene.frame([b])
    assert [r.face_id for r in results] == ['f2']
    assert results[0].expression == 'sad'
    # B moves into where A was (after A's track expired): still f2, and A's id is never given again
    for i in range(1, 36):
        x = 450 - 10 * i
        assert scene.ids([((x, 120, 85, 85), 'sad')]) == ['f2']
    for _ in range(10):
        scene.ids([((100, 120, 85, 85), 'sad')])
    assert len(scene.tracker.active_boxes()) == 1


def test_small_background_face_does_not_take_over_a_large_one():
    scene = Scene(TrackerConfig(min_hits=1, iou_threshold=0.3, max_center_distance=0.5, max_size_ratio=2.0))
    assert scene.ids([((100, 100, 200, 200), 'happy')]) == ['f1']
    # next frame only a small face near the big one's centre: IoU 0.04, size ratio 5 -> a new track
    assert scene.ids([((180, 180, 40, 40), 'neutral')]) == ['f2']


def test_a_face_matched_again_after_frames_stopped_keeps_its_id_with_fresh_smoothing():
    scene = Scene(TrackerConfig(min_hits=1, coast_s=0.5))
    box = (100, 100, 80, 80)
    for _ in range(5):
        assert scene.ids([(box, 'happy')]) == ['f1']
    back = scene.frame([(box, 'sad')], dt=3.0)       # the camera paused for 3 s: same place, same face
    assert [(f.face_id, f.expression) for f in back] == [('f1', 'sad')]
    assert back[0].confidence == pytest.approx(0.8, abs=1e-4)      # 3 s >> tau_s: the old state is gone
    assert scene.ids([], dt=0.6) == [] and scene.tracker.face_ids == []   # an unmatched frame 0.6 s later


def test_reset_drops_tracks_but_never_reuses_ids():
    scene = Scene(TrackerConfig(min_hits=1))
    face = ((100, 100, 80, 80), 'neutral')
    assert scene.ids([face]) == ['f1']
    scene.tracker.reset()
    assert len(scene.tracker.active_boxes()) == 0
    assert scene.ids([face]) == ['f2']


def test_results_are_sorted_by_creation_order():
    scene = Scene(TrackerConfig(min_hits=1, coast_s=0.0))
    for _ in range(9):                               # burn ids f1..f9
        scene.ids([((0, 0, 10, 10), 'neutral')])
        scene.ids([])
    boxes = [((100 * i, 0, 50, 50), 'neutral') for i in range(3)]
    scene.ids(boxes[:1])                             # f10
    assert scene.ids(boxes) == ['f10', 'f11', 'f12']
    assert scene.ids(boxes[::-1]) == ['f10', 'f11', 'f12']


def test_per_track_smoothing_suppresses_one_frame_flicker():
    scene = Scene(TrackerConfig(min_hits=1), SmoothingConfig(method='ema', tau_s=0.065))
    box = (100, 100, 80, 80)
    for _ in range(10):
        scene.frame([(box, 'happy')])
    flicker = scene.frame([(box, 'scared')])[0]
    assert flicker.expression == 'happy'                                 # smoothed: unchanged
    assert EXPRESSIONS[int(np.argmax(flicker.raw_probabilities))] == 'scared'   # raw: this frame's output
    assert flicker.probabilities.dtype == np.float32 and flicker.probabilities.sum() == pytest.approx(1, abs=1e-5)
    assert flicker.confidence == pytest.approx(float(flicker.probabilities.max()))
    expected = circumplex_point(flicker.probabilities, circumplex_matrix(EXPRESSIONS))
    assert (flicker.valence, flicker.arousal) == pytest.approx(expected, abs=1e-6)
    assert scene.frame([(box, 'happy')])[0].expression == 'happy'
    # a second face's history is its own: it starts from its first frame
    results = scene.frame([(box, 'happy'), ((500, 100, 80, 80), 'sad')])
    assert [(r.face_id, r.expression) for r in results] == [('f1', 'happy'), ('f2', 'sad')]
