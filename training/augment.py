"""Augmentation: the paper's improved random erasing (Sec. 3.2) and JAFFE expansion.

All functions take an explicit ``numpy.random.Generator``; the training dataset seeds one per
(seed, epoch, sample), so augmentation is identical whatever the number of DataLoader workers or
processes, and a resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from training.config import ErasingConfig, ExpansionConfig


class ImprovedRandomErasing:
    """Random erasing (Zhong et al. 2017) with the erase point drawn inside the face box.

    With probability ``p`` a rectangle is filled with noise (or a constant):
    ``S_e = S * U(sl, sh)`` (S = image area), ``r_e = U(r1, 1/r1)``,
    ``H_e = round(sqrt(S_e * r_e))``, ``W_e = round(sqrt(S_e / r_e))``; the top-left erase point
    ``(x_e, y_e)`` is uniform inside the face box (paper eq. 12, instead of the whole image) and the
    rectangle must fit in the image (``x_e + W_e <= W``, ``y_e + H_e <= H``), else all three are
    drawn again, up to ``max_attempts`` times (then the image is left as is, as in Zhong et al.).
    """

    def __init__(self, cfg: ErasingConfig) -> None:
        self.cfg = cfg

    def sample(self, height: int, width: int, box, rng: np.random.Generator
               ) -> tuple[int, int, int, int] | None:
        """The rectangle (top, left, h_e, w_e) in pixels, or None (not erased this time).

        box: (x0, y0, x1, y1) face box as fractions of the image.
        """
        c = self.cfg
        if rng.random() >= c.p:
            return None
        area = height * width
        fx0, fy0, fx1, fy1 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
        for _ in range(c.max_attempts):
            s_e = area * rng.uniform(c.sl, c.sh)
            r_e = rng.uniform(c.r1, 1.0 / c.r1)
            h_e = int(round(math.sqrt(s_e * r_e)))
            w_e = int(round(math.sqrt(s_e / r_e)))
            if not (1 <= h_e < height and 1 <= w_e < width):
                continue
            x_e = min(int(rng.uniform(fx0, fx1)), width - 1)
            y_e = min(int(rng.uniform(fy0, fy1)), height - 1)
            if x_e + w_e <= width and y_e + h_e <= height:
                return y_e, x_e, h_e, w_e
        return None

    def __call__(self, img: np.ndarray, box, rng: np.random.Generator) -> np.ndarray:
        """img: float32[H, W, C] in [0, 1] (modified in place and returned)."""
        rect = self.sample(img.shape[0], img.shape[1], box, rng)
        if rect is not None:
            top, left, h_e, w_e = rect
            if self.cfg.fill == 'random':
                img[top:top + h_e, left:left + w_e] = rng.random((h_e, w_e, img.shape[2]), dtype=np.float32)
            else:
                img[top:top + h_e, left:left + w_e] = self.cfg.fill_value
        return img


class Expansion:
    """The paper's JAFFE data expansion as one random transform per draw.

    Geometry (one affine warp, edge pixels replicated): rotation U(-rotation, rotation) degrees and
    scale U(scale) about the centre, shift U(-shift, shift) * side, a crop window of U(crop, 1) of
    the side at a random place resized back to the full side, horizontal flip with probability flip.
    Photometry: contrast factor U(contrast) about the image mean. The face box moves with the image.
    """

    def __init__(self, cfg: ExpansionConfig) -> None:
        self.cfg = cfg

    def matrix(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """float64[3, 3] source -> destination pixel mapping for a size x size image."""
        c = self.cfg
        centre = (size - 1) / 2.0
        angle = rng.uniform(-c.rotation, c.rotation)
        scale = rng.uniform(c.scale[0], c.scale[1])
        m = np.eye(3)
        m[:2] = cv2.getRotationMatrix2D((centre, centre), angle, scale)
        tx, ty = rng.uniform(-c.shift, c.shift, size=2) * size
        shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], float)
        frac = rng.uniform(c.crop, 1.0)
        ox, oy = rng.uniform(0.0, (1.0 - frac) * size, size=2)
        crop = np.array([[1 / frac, 0, -ox / frac], [0, 1 / frac, -oy / frac], [0, 0, 1]], float)
        m = crop @ shift @ m
        if rng.random() < c.flip:
            m = np.array([[-1, 0, size - 1], [0, 1, 0], [0, 0, 1]], float) @ m
        return m

    def __call__(self, img: np.ndarray, box: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        """img uint8[S, S, C], box (x0, y0, x1, y1) fractions -> (float32[S, S, C] in [0, 1], box)."""
        size = img.shape[0]
        m = self.matrix(size, rng)
        out = cv2.warpAffine(img, m[:2], (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE).reshape(img.shape)
        x = out.astype(np.float32) / 255.0
        alpha = rng.uniform(self.cfg.contrast[0], self.cfg.contrast[1])
        mean = float(x.mean())
        x = np.clip(mean + alpha * (x - mean), 0.0, 1.0, out=x)
        return x, transform_box(box, m, size)


def transform_box(box: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Bounding box of the mapped corners of ``box`` (fractions), clipped to the image; the whole
    image when the face leaves it (a degenerate box would make erasing impossible)."""
    x0, y0, x1, y1 = np.asarray(box, float) * size
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]]) @ m.T
    nx0, ny0 = np.clip(corners[:, :2].min(axis=0), 0, size)
    nx1, ny1 = np.clip(corners[:, :2].max(axis=0), 0, size)
    if nx1 - nx0 < 1 or ny1 - ny0 < 1:
        return np.array([0, 0, 1, 1], np.float32)
    return (np.array([nx0, ny0, nx1, ny1]) / size).astype(np.float32)


def normalize(img: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """float32[H, W, C] in [0, 1] -> float32[C, H, W] = (img - mean[c]) / std[c], C-contiguous."""
    return np.ascontiguousarray(((img - mean) / std).transpose(2, 0, 1), dtype=np.float32)
