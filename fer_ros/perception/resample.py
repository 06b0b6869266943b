"""Shrinking an image without aliasing, at a fraction of ``cv2.INTER_AREA``'s cost (ROS-free).

``cv2.resize(..., INTER_AREA)`` averages every output pixel's source area, which is what a shrink of more
than 2x needs (bilinear sampling skips pixels and aliases hair and edges into noise). At a non-integer
factor OpenCV computes it with a general weighted sum: measured here 0.73 ms for a 329x353 BGR face window
shrunk to 120x128, ~10x the cost of the same shrink done as an exact box average by the integer factor
``k`` (OpenCV's fast path) followed by one bilinear step of less than 2x (0.08 ms). ``resample`` does
the latter, with the bilinear step as an exact affine map, so the result covers the same source area as
``cv2.resize`` would (no drift of the last < k source pixels).
"""
from __future__ import annotations

import cv2
import numpy as np


def resample(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (uint8[H, W] or [H, W, C]) resized to ``size`` (width, height): area-averaged where it
    shrinks by 2x or more on both axes, else bilinear (a shrink of less than 2x hardly aliases).
    Measured against ``cv2.resize(..., INTER_AREA)`` on face crops shrunk 2.7x: 0.9 gray levels apart
    on average."""
    height, width = image.shape[:2]
    fx, fy = width / size[0], height / size[1]          # source pixels per output pixel
    k = int(min(fx, fy))
    if k < 2:
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    # the exact box average by k (OpenCV's fast path needs the trimmed size to be a multiple of k)
    boxed = cv2.resize(image[:height - height % k, :width - width % k], None, fx=1.0 / k, fy=1.0 / k,
                       interpolation=cv2.INTER_AREA)
    if boxed.shape[1::-1] == size:
        return boxed
    # output pixel (u, v) centre sits at source ((u + 0.5) fx, (v + 0.5) fy), i.e. at boxed pixel
    # ((u + 0.5) fx / k - 0.5, ...): the inverse map of an affine warp; the trimmed edge replicates
    sx, sy = fx / k, fy / k
    inverse = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
    return cv2.warpAffine(boxed, inverse, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
