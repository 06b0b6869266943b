"""fer_ros.perception.resample: the fast area-averaged shrink gives what cv2.INTER_AREA gives."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_ros.perception.resample import resample
from fer_ros.sample_frames import sample_frame


@pytest.mark.parametrize('window, size', [
    ((0, 2, 329, 355), (120, 128)),      # an ROI window of a 180 px face (shrunk 2.7x)
    ((3, 3, 300, 301), (112, 112)),      # a landmark chip
    ((10, 10, 500, 470), (64, 64)),      # shrunk 7x
])
def test_a_face_shrunk_reads_as_inter_area_does(window, size):
    frame = sample_frame(1)[0]
    x0, y0, x1, y1 = window
    crop = frame[y0:y1, x0:x1]
    ours = resample(crop, size).astype(int)
    area = cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(int)
    assert ours.shape == area.shape
    assert np.abs(ours - area).mean() < 4.0          # measured 0.9-3.4 gray levels


def test_no_drift_across_the_image():
    """The last source pixels that the integer box average trims are not stretched away: a gradient keeps
    its values at both edges."""
    ramp = np.tile((np.arange(331) * 0.7).astype(np.uint8)[None, :], (300, 1))
    ours = resample(ramp, (100, 90)).astype(int)
    area = cv2.resize(ramp, (100, 90), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(ours - area).max() <= 1


def test_exact_integer_factors_are_inter_area_and_small_changes_are_bilinear():
    frame = sample_frame(1)[0]
    assert np.array_equal(resample(frame, (160, 120)), cv2.resize(frame, (160, 120), interpolation=cv2.INTER_AREA))
    for size in ((400, 300), (800, 600)):          # shrunk less than 2x, enlarged
        assert np.array_equal(resample(frame, size), cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR))
