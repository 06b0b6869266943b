"""Face detectors on the repository's real photos and on sample frames built from them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_ros.backends import create_face_detector
from fer_ros.perception.detectors import DetectorConfig, find_haar_cascade
from fer_ros.sample_frames import FACE_SOURCES, load_asset, sample_frame

NO_YUFACE = 'the yuface binding is not installed (its wheels: x86_64, CPython 3.10/3.11 only)'


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope='module', params=['yunet', 'yuface'])
def cnn(request):
    """Both builds of the libfacedetection CNN: the ONNX model (default) and the yuface binding."""
    if request.param == 'yuface':
        pytest.importorskip('yuface', reason=NO_YUFACE)
    return create_face_detector(DetectorConfig(kind=request.param))


@pytest.fixture(scope='module')
def haar():
    try:
        find_haar_cascade()
    except FileNotFoundError as exc:
        pytest.skip(f'no Haar cascade (make setup installs opencv-python-headless<5, which has them): {exc}')
    return create_face_detector(DetectorConfig(kind='haar'))


ASTRONAUT_BOX = FACE_SOURCES[0].box   # (178, 62, 89, 112)
CAMERA_BOX = FACE_SOURCES[1].box


@pytest.mark.parametrize('name, box', [('astronaut.jpg', ASTRONAUT_BOX), ('camera.jpg', CAMERA_BOX)])
def test_cnn_finds_the_one_face(cnn, name, box):
    faces = cnn.detect(load_asset(name))
    assert len(faces) == 1
    assert iou(faces[0].box, box) > 0.8
    assert 0.6 <= faces[0].score <= 1.0
    marks = faces[0].landmarks
    assert marks.shape == (5, 2) and marks.dtype == np.float32
    x, y, w, h = faces[0].box
    assert np.all((marks[:, 0] > x) & (marks[:, 0] < x + w) & (marks[:, 1] > y) & (marks[:, 1] < y + h))


def test_no_face_on_face_free_photo(cnn, haar):
    coffee = load_asset('coffee.jpg')
    assert cnn.detect(coffee) == []
    assert haar.detect(coffee) == []


def test_haar_finds_the_frontal_astronaut(haar):
    faces = haar.detect(load_asset('astronaut.jpg'))
    assert len(faces) == 1
    assert iou(faces[0].box, ASTRONAUT_BOX) > 0.6
    assert faces[0].landmarks is None


@pytest.mark.parametrize('num_faces', [1, 3, 5])
def test_cnn_finds_every_face_of_sample_frames(cnn, num_faces):
    frame, truth = sample_frame(num_faces, seed=1)
    faces = cnn.detect(frame)
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
    faces = create_face_detector(DetectorConfig(max_side=512)).detect(big)
    assert len(faces) == 1
    expected = tuple(v * 3 for v in ASTRONAUT_BOX)
    assert iou(faces[0].box, expected) > 0.8
    assert faces[0].landmarks[:, 0].min() > expected[0]


def test_limits_threshold_size_and_count(cnn):
    frame, _ = sample_frame(5, seed=1)
    top2 = create_face_detector(DetectorConfig(kind=cnn.config.kind, max_faces=2)).detect(frame)
    assert len(top2) == 2
    assert [f.score for f in top2] == [f.score for f in cnn.detect(frame)[:2]]
    astronaut = load_asset('astronaut.jpg')
    assert create_face_detector(DetectorConfig(min_face_size=120)).detect(astronaut) == []
    assert create_face_detector(DetectorConfig(confidence_threshold=0.99)).detect(astronaut) == []


def test_boxes_are_clipped_to_the_image(cnn):
    # the astronaut's face cut by the left/top border: the box must not start outside the image
    crop = np.ascontiguousarray(load_asset('astronaut.jpg')[90:, 200:])
    faces = cnn.detect(crop)
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
def test_detect_rejects_non_images(cnn, image):
    with pytest.raises(ValueError, match='uint8'):
        cnn.detect(image)


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


# --- ROI-assisted detection: detect(bgr, regions=...) --------------------------------------------------

def test_roi_windows_are_squares_around_the_boxes_clipped_to_the_frame():
    detector = create_face_detector(DetectorConfig(roi_scale=2.0, roi_face_px=64))
    (window, scale), = detector.roi_windows([(100, 100, 50, 80)], 640, 480)
    assert window == (45, 60, 205, 220) and scale == pytest.approx(64 / 80)
    (window, _), = detector.roi_windows([(0, 440, 40, 40)], 640, 480)      # corner: clipped
    assert window == (0, 420, 60, 480)
    (_, scale), = detector.roi_windows([(10, 10, 8, 8)], 640, 480)         # enlarged at most 4x
    assert scale == 4.0
    assert detector.roi_windows([(700, 10, 40, 40), (10, 10, 0, 0)], 640, 480) == []
    with pytest.raises(ValueError, match='region'):
        detector.roi_windows([(1, 2, 3)], 640, 480)


def test_a_resized_roi_window_never_exceeds_roi_scale_times_roi_face_px():
    """The window's pixel rounding (floor/ceil of its corners) must not make it 129 px after resizing: the
    network's input would be 160 (a multiple of 32), 1.56x the work of 128."""
    detector = create_face_detector(DetectorConfig(roi_scale=2.0, roi_face_px=64))
    sides = []
    for x in np.arange(100.0, 110.0, 0.37):
        for side in np.arange(40.0, 200.0, 3.3):
            ((x0, y0, x1, y1), scale), = detector.roi_windows([(x, 150.0 - side / 2, side, side)], 640, 480)
            sides.append(max(round((x1 - x0) * scale), round((y1 - y0) * scale)))
    assert max(sides) == 128 and min(sides) >= 126


@pytest.mark.parametrize('num_faces, seed', [(1, 0), (1, 2), (5, 0), (5, 1), (5, 3)])
def test_roi_detection_finds_the_faces_full_detection_finds(cnn, num_faces, seed):
    frame, _ = sample_frame(num_faces, seed=seed)
    full = cnn.detect(frame)
    roi = cnn.detect(frame, regions=[f.box for f in full])
    assert len(full) == num_faces and len(roi) == num_faces      # neighbouring windows overlap: no duplicates
    for face in full:
        assert max(iou(face.box, r.box) for r in roi) >= 0.7
    scores = [r.score for r in roi]
    assert scores == sorted(scores, reverse=True)
    marks = roi[0].landmarks
    x, y, w, h = roi[0].box
    assert marks.shape == (5, 2) and np.all((marks[:, 0] > x) & (marks[:, 0] < x + w))


def test_roi_detection_searches_only_the_regions(cnn):
    frame, truth = sample_frame(5, seed=1)
    found = cnn.detect(frame, regions=[truth[0]])                 # top-left face only
    assert len(found) == 1 and iou(found[0].box, truth[0]) > 0.6
    assert cnn.detect(frame, regions=[]) == []


def test_overlapping_regions_of_one_face_give_one_detection(cnn):
    frame, (box,) = sample_frame(1, seed=0)
    x, y, w, h = box
    regions = [box, (x + 0.3 * w, y, w, h), (x - 0.2 * w, y + 0.2 * h, w * 1.2, h * 1.2)]
    found = cnn.detect(frame, regions=regions)
    assert len(found) == 1 and iou(found[0].box, box) > 0.7


@pytest.mark.parametrize('dx, dy', [(0.3, 0.0), (-0.3, 0.0), (0.0, 0.3), (0.25, -0.25)])
def test_roi_follows_a_face_that_moved(cnn, dx, dy):
    # the search is around the previous frame's box; the face moved by a fraction of its size since
    frame, truth = sample_frame(5, seed=2)
    for x, y, w, h in truth:
        side = max(w, h)
        found = cnn.detect(frame, regions=[(x - dx * side, y - dy * side, w, h)])
        assert max((iou(f.box, (x, y, w, h)) for f in found), default=0) > 0.6


def test_roi_finds_a_small_face_the_full_frame_misses():
    # faces this small are below yuface's reliable size at 640x480; the ROI crop enlarges them
    from fer_ros.sample_frames import background, paste_face

    detector = create_face_detector(DetectorConfig(min_face_size=8))
    frame = background().copy()
    box = paste_face(frame, FACE_SOURCES[1], (320, 240), 24)
    assert detector.detect(frame) == []
    found = detector.detect(frame, regions=[box])
    assert len(found) == 1 and iou(found[0].box, box) > 0.5


def test_haar_roi_detection(haar):
    frame, truth = sample_frame(5, seed=1)
    full = haar.detect(frame)
    roi = haar.detect(frame, regions=[f.box for f in full])
    assert len(roi) == len(full) >= 3
    for face in full:
        assert max(iou(face.box, r.box) for r in roi) >= 0.7


@pytest.mark.parametrize('kwargs, name', [
    ({'full_scan_s': -0.1}, 'full_scan_s'), ({'full_scan_s': 61.0}, 'full_scan_s'),
    ({'full_scan_s': True}, 'full_scan_s'), ({'full_scan_share': 0.0}, 'full_scan_share'),
    ({'full_scan_share': 1.5}, 'full_scan_share'), ({'idle_scan_s': -1.0}, 'idle_scan_s'),
    ({'idle_scan_s': 61.0}, 'idle_scan_s'), ({'roi_scale': 1.0}, 'roi_scale'),
    ({'roi_scale': 9}, 'roi_scale'), ({'roi_scale': 'x'}, 'roi_scale'), ({'roi_face_px': 8}, 'roi_face_px'),
    ({'roi_face_px': 64.0}, 'roi_face_px')])
def test_roi_config_rejects_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=f'DetectorConfig.{name}'):
        DetectorConfig(**kwargs)


def test_roi_config_defaults():
    config = DetectorConfig()
    assert (config.full_scan_s, config.full_scan_share, config.idle_scan_s, config.roi_scale,
            config.roi_face_px) == (0.05, 0.25, 0.5, 2.0, 64)


def test_yuface_detection_does_not_leak_memory():
    """Regression: yuface.c_detect leaks its 36 KB result buffer per call (+620 MB in a 10-minute soak)."""
    import psutil

    from fer_ros.perception.detectors import DetectorConfig
    from fer_ros.sample_frames import sample_frame
    pytest.importorskip('yuface', reason=NO_YUFACE)
    detector = create_face_detector(DetectorConfig(kind='yuface', max_side=320))
    frame, _ = sample_frame(1, size=(320, 240), seed=0)
    for _ in range(20):   # warm-up: allocator pools, OpenMP threads
        detector.detect(frame)
    process = psutil.Process()
    before = process.memory_info().rss
    for _ in range(400):
        assert len(detector.detect(frame)) == 1
    grown_mb = (process.memory_info().rss - before) / 2**20
    assert grown_mb < 5.0, f'resident memory grew {grown_mb:.1f} MB over 400 detections (a leak: ~14 MB)'


def _drop_duplicates_loop(order, corners, limit=0.5):
    """The pairwise loop the detectors used before the vectorised ``_drop_duplicates``."""
    kept = []
    for i in order:
        a = corners[i]
        duplicate = False
        for j in kept:
            b = corners[j]
            iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
            smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
            if iw > 0 and ih > 0 and smaller > 0 and iw * ih / smaller >= limit:
                duplicate = True
                break
        if not duplicate:
            kept.append(i)
    return kept


@pytest.mark.parametrize('num_faces, seed', [(1, 0), (5, 1), (12, 0)])
def test_roi_duplicates_dropped_as_before(cnn, num_faces, seed):
    """Every window's candidates over a low threshold, from regions shifted around each real face: the
    vectorised suppression keeps exactly what the former loop kept."""
    from fer_ros.perception.detectors.base import ROI_DUPLICATE_OVERLAP, _drop_duplicates
    frame, truth = sample_frame(num_faces, seed=seed)
    height, width = frame.shape[:2]
    regions = [(x + dx * w, y + dy * h, w, h) for x, y, w, h in truth for dx, dy in ((0, 0), (0.4, 0), (0, -0.4))]
    found = [cnn._detect_window(frame, window, scale, 1) for window, scale in cnn.roi_windows(regions, width, height)]
    boxes = np.concatenate([f[0] for f in found])
    corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    order = list(np.argsort(-np.concatenate([f[1] for f in found]), kind='stable'))
    assert len(order) > len(truth)                     # overlapping windows saw the faces several times
    kept = _drop_duplicates(order, corners)
    assert kept == _drop_duplicates_loop(order, corners, ROI_DUPLICATE_OVERLAP)
    assert len(kept) >= num_faces
