"""The scene-change gate of the whole-frame scan (no ROS): when a still scene with tracked faces is scanned
only every idle_scan_s, and that a face appearing in it is still scanned for after full_scan_s.

Real photos (the repository's face sources pasted on its background), the real detector and classifier for
the pipeline-level case; stamps are the only clock, so nothing here depends on this machine's speed.
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from fer_ros.perception.detectors import DetectorConfig
from fer_ros.perception.full_scan import FullScans
from fer_ros.perception.scene_change import SceneChange, min_changed_pixels, thumbnail
from fer_ros.pipeline import PipelineConfig
from fer_ros.sample_frames import FACE_SOURCES, background, paste_face

from pipelines import build

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
FPS = 30.0
CONFIG = DetectorConfig()          # the defaults: full_scan_s 0.05, idle_scan_s 0.5, roi_scale 2


@pytest.fixture(scope='module')
def scenes():
    """(one tracked face, its box; the same with a newcomer of the smallest size a scan finds (24 px))."""
    one = background().copy()
    box = paste_face(one, FACE_SOURCES[0], (160, 240), 120)
    newcomer = one.copy()
    paste_face(newcomer, FACE_SOURCES[1], (480, 240), 24)
    return one, box, newcomer


def test_the_changed_pixel_count_is_the_smallest_findable_face_in_thumbnail_pixels():
    assert thumbnail(np.zeros((480, 640, 3), np.uint8)).shape == (60, 80)
    assert min_changed_pixels((640, 480), 640, 24) == 4          # 24 px -> 3 thumbnail px -> (3 - 1)^2
    assert min_changed_pixels((1280, 720), 640, 24) == 4         # the detector sees it halved: 48 px -> 3
    assert min_changed_pixels((640, 480), 640, 40) == 16         # min_face_size drops smaller faces
    assert min_changed_pixels((640, 480), 320, 24) == 25         # at 320 it needs 48 px: 6 -> (6 - 1)^2


def test_a_still_scene_is_unchanged_and_the_smallest_findable_newcomer_changes_it(scenes):
    one, box, newcomer = scenes
    scene = SceneChange(CONFIG.roi_scale, CONFIG.max_side, CONFIG.min_face_size)
    assert scene.changed('cam', one, [box])[0]                   # nothing kept yet
    scene.keep('cam', one)
    assert not scene.changed('cam', one.copy(), [box])[0]
    assert scene.changed('cam', newcomer, [box])[0]
    assert scene.changed('other', one, [box])[0]                 # cameras are separate: nothing kept for it
    scene.forget('cam')
    assert scene.changed('cam', one, [box])[0]


def test_sensor_noise_and_jpeg_do_not_count_but_a_moving_camera_does(scenes):
    one, box, _ = scenes
    scene = SceneChange(CONFIG.roi_scale, CONFIG.max_side, CONFIG.min_face_size)
    scene.keep('cam', one)
    noisy = np.clip(one + np.random.default_rng(0).normal(0, 8, one.shape), 0, 255).astype(np.uint8)
    jpeg = cv2.imdecode(cv2.imencode('.jpg', one, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)
    assert not scene.changed('cam', noisy, [box])[0] and not scene.changed('cam', jpeg, [box])[0]
    panned = np.roll(one, 8, axis=1)                             # the camera turned by 8 px
    assert scene.changed('cam', panned, [box])[0]
    assert scene.changed('cam', one[:240, :320].copy(), [])[0]   # another frame size: changed


def test_changes_around_a_tracked_face_are_ignored(scenes):
    one, box, _ = scenes
    scene = SceneChange(CONFIG.roi_scale, CONFIG.max_side, CONFIG.min_face_size)
    scene.keep('cam', one)
    other = one.copy()
    paste_face(other, FACE_SOURCES[1], (170, 235), 125)         # another face, head moved: in its window
    assert not scene.changed('cam', other, [box])[0]
    assert scene.changed('cam', other, [])[0]                    # the same change, nobody tracked there


def plan_frames(scans: FullScans, frames, lost=()) -> list[int]:
    """Frames i (stamped i / FPS) that ``scans.plan`` scans inline; the first has no track yet."""
    scanned = []
    for i, (frame, box) in enumerate(frames):
        if scans.plan('cam', frame, i / FPS, i / FPS, [box] if i else [], lost=i in lost):
            scanned.append(i)
    return scanned


def test_a_still_scene_is_scanned_every_idle_period(scenes):
    one, box, _ = scenes
    scans = FullScans(CONFIG, None, background=False)
    assert plan_frames(scans, [(one, box)] * 46) == [0, 15, 30, 45]          # every 0.5 s, not every 0.05 s


def test_a_newcomer_makes_the_next_scan_due_after_full_scan_s(scenes):
    one, box, newcomer = scenes
    scans = FullScans(CONFIG, None, background=False)
    frames = [(one, box)] * 16 + [(newcomer, box)] * 10                       # it appears at frame 16
    # frame 15: the idle scan; 16 is 33 ms after it (< full_scan_s), 17 the first due
    assert plan_frames(scans, frames) == [0, 15, 17]
    # after the scan of 17 the scene is still again (the newcomer is in the kept frame)


def test_a_track_the_roi_path_lost_makes_scans_fast_again(scenes):
    one, box, _ = scenes
    scans = FullScans(CONFIG, None, background=False)
    assert plan_frames(scans, [(one, box)] * 12, lost=range(5, 12)) == [0, 5, 7, 9, 11]


@pytest.mark.parametrize('idle_scan_s, full_scan_s', [(0.0, 0.05), (0.05, 0.05), (0.5, 0.0)])
def test_the_gate_off_scans_as_before(scenes, idle_scan_s, full_scan_s):
    one, box, _ = scenes
    scans = FullScans(DetectorConfig(full_scan_s=full_scan_s, idle_scan_s=idle_scan_s), None, background=False)
    expected = list(range(0, 12, 2)) if full_scan_s else list(range(12))   # every 0.05 s / every frame
    assert plan_frames(scans, [(one, box)] * 12) == expected


def test_the_gate_follows_set_config(scenes):
    one, box, _ = scenes
    scans = FullScans(CONFIG, None, background=False)
    scans.set_config(DetectorConfig(idle_scan_s=0.0), same_detector=True)
    assert plan_frames(scans, [(one, box)] * 5) == [0, 2, 4]
    scans.set_config(DetectorConfig(idle_scan_s=0.2), same_detector=True)
    assert plan_frames(scans, [(one, box)] * 8)[1:] == [6]                   # 0.2 s after the last scan


@pytest.mark.skipif(not os.path.isfile(DEFAULT_ONNX), reason='models/mini_xception_fer2013.onnx not converted yet')
def test_a_newcomer_in_a_still_stream_is_published_within_the_fast_bound(scenes):
    """The pipeline (inline, the defaults): a still scene with one tracked face is scanned every 0.5 s; a
    face pasted in just after such a scan is published full_scan_s + two frames after its first frame."""
    one, _, _ = scenes
    two = one.copy()
    paste_face(two, FACE_SOURCES[0], (480, 240), 120, mirror=True)
    pipeline = build(PipelineConfig(model_path=DEFAULT_ONNX))
    appears = 16
    results = [pipeline.process(one if i < appears else two, i / FPS) for i in range(appears + 6)]
    modes = [r.detect_mode for r in results]
    assert [i for i, m in enumerate(modes) if m == 'full'] == [0, 15, 17]    # idle scan at 15, newcomer's at 17
    first_id = results[1].faces[0].face_id
    published = next(i for i, r in enumerate(results) if len(r.faces) == 2)
    assert (published - appears) / FPS <= CONFIG.full_scan_s + 2 / FPS < CONFIG.idle_scan_s
    assert all([f.face_id for f in r.faces] == [first_id] for r in results[1:appears])
