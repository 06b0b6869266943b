"""Crop geometry (square, margin, image borders) and spec-driven normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from fer_ros.core.spec import ModelSpec
from fer_ros.perception.preprocess import crop_faces, crop_square, square_box

GRAY64 = ModelSpec(name='gray', height=64, width=64, channels=1, mean=(0.5,), std=(0.5,))
RGB48 = ModelSpec(name='rgb', height=48, width=40, channels=3, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def coordinate_image(height=120, width=160) -> np.ndarray:
    """B = column, G = row, R = 7: every pixel says where it came from."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :, 0] = np.arange(width)[None, :]
    img[:, :, 1] = np.arange(height)[:, None]
    img[:, :, 2] = 7
    return img


def test_square_box_is_centred_and_grown_by_the_margin():
    assert square_box((10, 20, 40, 80), 0.25) == (-20, 10, 100)   # side 80 * 1.25, centre (30, 60)
    assert square_box((10, 20, 40, 80), 0.0) == (-10, 20, 80)
    assert square_box((0.4, 0.4, 9.6, 9.6), 0.0) == (0, 0, 10)


@pytest.mark.parametrize('box, margin', [((0, 0, 0, 10), 0.2), ((0, 0, 10, -1), 0.2), ((0, 0, 10, 10), -0.1),
                                         ((0, 0, 10, 10), 2.5)])
def test_square_box_rejects_bad_input(box, margin):
    with pytest.raises(ValueError):
        square_box(box, margin)


def test_crop_inside_the_image_is_a_plain_cut():
    img = coordinate_image()
    crop = crop_square(img, (50, 40, 20, 30), 0.0)      # square side 30 at (45, 40)
    assert crop.shape == (30, 30, 3)
    assert np.array_equal(crop, img[40:70, 45:75])


def test_crop_at_the_top_left_border_replicates_edge_pixels():
    img = coordinate_image()
    crop = crop_square(img, (0, 0, 20, 20), 1.0)         # side 40 at (-10, -10)
    assert crop.shape == (40, 40, 3)
    assert np.array_equal(crop[10:, 10:], img[0:30, 0:30])       # the inside part is where it belongs
    assert np.all(crop[:10, :, 1] == 0) and np.all(crop[:, :10, 0] == 0)   # rows/cols beyond: row 0 / col 0
    assert np.array_equal(crop[:10, 10:, 0], np.tile(img[0, 0:30, 0], (10, 1)))


def test_crop_at_the_bottom_right_border_replicates_edge_pixels():
    img = coordinate_image(120, 160)
    crop = crop_square(img, (150, 110, 10, 10), 2.0)     # side 30 at (140, 100): 10 px beyond each edge
    assert crop.shape == (30, 30, 3)
    assert np.array_equal(crop[:20, :20], img[100:120, 140:160])
    assert np.all(crop[20:, :, 1] == 119) and np.all(crop[:, 20:, 0] == 159)


def test_crop_outside_the_image_is_an_error():
    with pytest.raises(ValueError, match='outside'):
        crop_square(coordinate_image(), (500, 500, 20, 20), 0.2)


def test_crop_faces_batches_gray_faces_with_the_spec_normalisation():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 100:] = 255
    batch = crop_faces(img, [(10, 10, 50, 50), (120, 20, 40, 60)], GRAY64, margin=0.2)
    assert batch.shape == (2, 1, 64, 64) and batch.dtype == np.float32 and batch.flags.c_contiguous
    np.testing.assert_allclose(batch[0], -1.0)          # black: (0 / 255 - 0.5) / 0.5
    np.testing.assert_allclose(batch[1], 1.0)           # white


def test_crop_faces_rgb_order_and_size():
    img = np.zeros((60, 60, 3), np.uint8)
    img[:, :, 0] = 255                                   # pure blue in BGR
    batch = crop_faces(img, [(10, 10, 30, 30)], RGB48, margin=0.0)
    assert batch.shape == (1, 3, 48, 40)
    np.testing.assert_allclose(batch[0, 2], 1.0)         # blue is the third channel in RGB
    np.testing.assert_allclose(batch[0, :2], 0.0)


def test_crop_faces_keeps_face_geometry_at_the_border():
    """A face cut by the border is not stretched: its in-image part keeps its place in the crop."""
    img = coordinate_image(200, 200)
    spec = ModelSpec(name='id', height=40, width=40, channels=3, mean=(0, 0, 0), std=(1 / 255,) * 3)  # x = pixel
    batch = crop_faces(img, [(0, 50, 40, 40)], spec, margin=0.0)   # square side 40 at (0, 50): no padding
    np.testing.assert_allclose(batch[0, 2], img[50:90, 0:40, 0], atol=0.5)   # R channel = BGR's B (column)
    cut = crop_faces(img, [(-20, 50, 40, 40)], spec, margin=0.0)   # half the face outside on the left
    np.testing.assert_allclose(cut[0, 2][:, 20:], img[50:90, 0:20, 0], atol=0.5)
    np.testing.assert_allclose(cut[0, 2][:, :20], 0.0)              # replicated column 0


def test_crop_faces_with_no_faces_and_bad_frames():
    assert crop_faces(coordinate_image(), [], GRAY64).shape == (0, 1, 64, 64)
    with pytest.raises(ValueError, match='uint8'):
        crop_faces(np.zeros((10, 10), np.uint8), [(0, 0, 5, 5)], GRAY64)
    with pytest.raises(ValueError, match='margin'):
        crop_faces(coordinate_image(), [(0, 0, 5, 5)], GRAY64, margin=3.0)
