"""Face detectors on the repository's real photos and on sample frames built from them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_ros.core.detection import DetectorConfig, create_detector, find_haar_cascade
from fer_ros.core.sample_frames import FACE_SOURCES, load_asset, sample_frame


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope='module')
def yuface():
    return create_detector(DetectorConfig())


@pytest.fixture(scope='module')
def haar():
    try:
        find_haar_cascade()
    except FileNotFoundError as exc:
        pytest.skip(f'no Haar cascade on this machine: {exc}')
    return create_detector(DetectorConfig(kind='haar'))


ASTRONAUT_BOX = FACE_SOURCES[0].box   # (178, 62, 89, 112)
CAMERA_BOX = FACE_SOURCES[1].box


@pytest.mark.parametrize('name, box', [('astronaut.jpg', ASTRONAUT_BOX), ('camera.jpg', CAMERA_BOX)])
def test_yuface_finds_the_one_face(yuface, name, box):
    faces = yuface.detect(load_asset(name))
    assert len(faces) == 1
    assert iou(faces[0].box, box) > 0.8
    assert 0.6 <= faces[0].score <= 1.0
    marks = faces[0].landmarks
    assert marks.shape == (5, 2) and marks.dtype == np.float32
    x, y, w, h = faces[0].box
    assert np.all((marks[:, 0] > x) & (marks[:, 0] < x + w) & (marks[:, 1] > y) & (marks[:, 1] < y + h))


def test_no_face_on_face_free_photo(yuface, haar):
    coffee = load_asset('coffee.jpg')
    assert yuface.detect(coffee) == []
    assert haar.detect(coffee) == []


def test_haar_finds_the_frontal_astronaut(haar):
    faces = haar.detect(load_asset('astronaut.jpg'))
    assert len(faces) == 1
    assert iou(faces[0].box, ASTRONAUT_BOX) > 0.6
    assert faces[0].landmarks is None


@pytest.mark.parametrize('num_faces', [1, 3, 5])
def test_yuface_finds_every_face_of_sample_frames(yuface, num_faces):
    frame, truth = sample_frame(num_faces, seed=1)
    faces = yuface.detect(frame)
    assert len(faces) == num_faces
    for box in truth:
        assert max(iou(box, f.box) for f in faces) > 0.6
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)


def test_haar_on_five_faces_finds_the_frontal_ones(haar):
    frame, truth = sample_frame(5, seed=1)
    faces = haar.detect(frame)
    # the three astronaut faces are frontal; the cameraman is in profile-ish view
    astronauts = [truth[i] for i in (0, 2, 4)]
    assert all(max((iou(b, f.box) for f in faces), default=0) > 0.5 for b in astronauts)
    assert len(faces) <= 5


def test_boxes_map_back_from_the_downscaled_copy():
    big = cv2.resize(load_asset('astronaut.jpg'), (1536, 1536), interpolation=cv2.INTER_CUBIC)
    faces = create_detector(DetectorConfig(max_side=512)).detect(big)
    assert len(faces) == 1
    expected = tuple(v * 3 for v in ASTRONAUT_BOX)
    assert iou(faces[0].box, expected) > 0.8
    assert faces[0].landmarks[:, 0].min() > expected[0]


def test_limits_threshold_size_and_count(yuface):
    frame, _ = sample_frame(5, seed=1)
    assert len(create_detector(DetectorConfig(max_faces=2)).detect(frame)) == 2
    top2 = create_detector(DetectorConfig(max_faces=2)).detect(frame)
    assert [f.score for f in top2] == [f.score for f in yuface.detect(frame)[:2]]
    astronaut = load_asset('astronaut.jpg')
    assert create_detector(DetectorConfig(min_face_size=120)).detect(astronaut) == []
    assert create_detector(DetectorConfig(confidence_threshold=0.99)).detect(astronaut) == []


def test_boxes_are_clipped_to_the_image(yuface):
    # the astronaut's face cut by the left/top border: the box must not start outside the image
    crop = np.ascontiguousarray(load_asset('astronaut.jpg')[90:, 200:])
    faces = yuface.detect(crop)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert x >= 0 and y >= 0 and x + w <= crop.shape[1] and y + h <= crop.shape[0]


@pytest.mark.parametrize('kwargs, name', [
    ({'kind': 'mtcnn'}, 'kind'), ({'max_side': 32}, 'max_side'), ({'min_face_size': 0}, 'min_face_size'),
    ({'confidence_threshold': 1.5}, 'confidence_threshold'), ({'max_faces': 0}, 'max_faces'),
    ({'num_threads': -1}, 'num_threads')])
def test_config_rejects_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DetectorConfig(**kwargs)


@pytest.mark.parametrize('image', [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                   np.zeros((0, 10, 3), np.uint8), 'frame.jpg'])
def test_detect_rejects_non_images(yuface, image):
    with pytest.raises(ValueError, match='uint8'):
        yuface.detect(image)


def test_sample_frames_are_deterministic():
    a, boxes_a = sample_frame(5, seed=3)
    b, boxes_b = sample_frame(5, seed=3)
    c, _ = sample_frame(5, seed=4)
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and boxes_a == boxes_b
    assert not np.array_equal(a, c)
    empty, none = sample_frame(0, size=(320, 240))
    assert empty.shape == (240, 320, 3) and none == []
    for x, y, w, h in boxes_a:
        assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480 and w > 20 and h > 20
    with pytest.raises(ValueError, match='num_faces'):
        sample_frame(13)
    with pytest.raises(ValueError, match='size'):
        sample_frame(1, size=(100, 100))
