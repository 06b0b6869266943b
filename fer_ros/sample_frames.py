"""Deterministic camera-like test frames with real faces and known face boxes (demo and test data).

Not part of the perception pipeline: used by the camera stand-in (fer_camera, `make demo`),
`fer-make-bag --sample`, the tests and the benchmarks. A frame is the repository's face-free
photo (assets/coffee.jpg) resized to the frame size, with 0..N real faces pasted on it: the faces of
assets/astronaut.jpg and assets/camera.jpg (both public domain, from scikit-image), optionally mirrored
and scaled. Each face is pasted as a crop with margin, blended through a feathered ellipse so no hard
patch edge looks like a face contour, and its true box (the source face box, mapped into the frame) is
returned. The same (num_faces, size, seed) always gives the same pixels.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from fer_ros.util import paths

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class FaceSource:
    """A face in a repository photo: file name and the face box (x, y, w, h), as yuface finds it."""

    image: str
    box: tuple[int, int, int, int]


FACE_SOURCES: tuple[FaceSource, ...] = (
    FaceSource('astronaut.jpg', (178, 62, 89, 112)),
    FaceSource('camera.jpg', (195, 115, 60, 80)),
)
BACKGROUND = 'coffee.jpg'
MARGIN = 0.45          # pasted crop = face box grown by this fraction of its size on every side
MAX_FACES = 12


def asset_path(name: str) -> str:
    """Path of a repository photo (source checkout, or share/fer_ros/assets of an install).

    Raises:
        FileNotFoundError: the message lists every place searched.
    """
    return paths.find_asset(name)


@functools.lru_cache(maxsize=8)
def load_asset(name: str) -> np.ndarray:
    """uint8[H, W, 3] BGR photo from assets/ (cached; do not modify the returned array)."""
    image = cv2.imread(asset_path(name), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'assets/{name} exists but does not decode as an image')
    image.setflags(write=False)
    return image


def _face_patch(source: FaceSource, mirror: bool) -> tuple[np.ndarray, Box]:
    """Crop (face box + MARGIN) of a source photo and the face box inside that crop."""
    image = load_asset(source.image)
    x, y, w, h = source.box
    mx, my = round(w * MARGIN), round(h * MARGIN)
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(image.shape[1], x + w + mx), min(image.shape[0], y + h + my)
    patch = image[y0:y1, x0:x1]
    fx, fy = x - x0, y - y0
    if mirror:
        patch = patch[:, ::-1]
        fx = patch.shape[1] - fx - w
    return np.ascontiguousarray(patch), (float(fx), float(fy), float(w), float(h))


def _feather_mask(height: int, width: int) -> np.ndarray:
    """float32[H, W, 1] ellipse mask, 1 inside, fading to 0 at the patch border."""
    mask = np.zeros((height, width), np.float32)
    cv2.ellipse(mask, (width // 2, height // 2), (max(1, int(width * 0.42)), max(1, int(height * 0.42))),
                0, 0, 360, 1.0, -1)
    k = max(3, (min(height, width) // 6) | 1)
    return cv2.GaussianBlur(mask, (k, k), 0)[:, :, None]


def background(size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """uint8[H, W, 3] face-free background (assets/coffee.jpg, cover-resized and centre-cropped)."""
    width, height = size
    image = load_asset(BACKGROUND)
    scale = max(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y0, x0 = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[y0:y0 + height, x0:x0 + width])


def paste_face(frame: np.ndarray, source: FaceSource, center: tuple[float, float], face_height: float,
               mirror: bool = False) -> Box:
    """Paste a source face into ``frame`` (in place) so the face box is ``face_height`` px tall and
    centred on ``center``; returns the face box (x, y, w, h) in frame pixels (clipped to the frame)."""
    patch, (fx, fy, fw, fh) = _face_patch(source, mirror)
    if face_height < 8:
        raise ValueError(f'paste_face: face_height must be >= 8 px, got {face_height}')
    scale = face_height / fh
    pw, ph = max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale))
    sx, sy = pw / patch.shape[1], ph / patch.shape[0]  # exact factors after rounding the patch size
    patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    fx, fy, fw, fh = fx * sx, fy * sy, fw * sx, fh * sy
    px, py = round(center[0] - fx - fw / 2), round(center[1] - fy - fh / 2)
    # the part of the patch that lands inside the frame
    x0, y0 = max(0, px), max(0, py)
    x1, y1 = min(frame.shape[1], px + pw), min(frame.shape[0], py + ph)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f'paste_face: a face centred at {center} lies outside the '
                         f'{frame.shape[1]}x{frame.shape[0]} frame')
    alpha = _feather_mask(ph, pw)[y0 - py:y1 - py, x0 - px:x1 - px]
    region = frame[y0:y1, x0:x1].astype(np.float32)
    blended = region * (1 - alpha) + patch[y0 - py:y1 - py, x0 - px:x1 - px].astype(np.float32) * alpha
    frame[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    bx0, by0 = max(0.0, px + fx), max(0.0, py + fy)
    bx1, by1 = min(float(frame.shape[1]), px + fx + fw), min(float(frame.shape[0]), py + fy + fh)
    return (bx0, by0, bx1 - bx0, by1 - by0)


def sample_frame(num_faces: int, size: tuple[int, int] = (640, 480), seed: int = 0) -> tuple[np.ndarray, list[Box]]:
    """A deterministic frame with ``num_faces`` real faces on a face-free photo.

    Faces are laid out on a grid (one cell per face, no overlap), alternating the astronaut and the
    cameraman, mirrored on odd cells; ``seed`` jitters each face's size (0.75..0.95 of the cell's
    usable height, at most 180 px) and position inside its cell.

    Args:
        num_faces: 0..12.
        size: (width, height) of the frame, each 160..4096.
        seed: any int; same arguments give the same frame.
    Returns:
        (uint8[H, W, 3] BGR frame, list of num_faces face boxes (x, y, w, h) in frame pixels, row-major order)
    Raises:
        ValueError: num_faces or size out of range.
    """
    width, height = size
    if not 0 <= num_faces <= MAX_FACES:
        raise ValueError(f'sample_frame: num_faces must be in 0..{MAX_FACES}, got {num_faces}')
    if not (160 <= width <= 4096 and 160 <= height <= 4096):
        raise ValueError(f'sample_frame: size (width, height) must be within 160..4096, got {size}')
    frame = background((width, height)).copy()
    if num_faces == 0:
        return frame, []
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(num_faces * width / height)))
    rows = int(np.ceil(num_faces / cols))
    cell_w, cell_h = width / cols, height / rows
    boxes = []
    for i in range(num_faces):
        row, col = divmod(i, cols)
        source = FACE_SOURCES[i % len(FACE_SOURCES)]
        aspect = source.box[2] / source.box[3]
        # face box + margin must fit the cell; faces are taller than wide, so height limits
        usable = min(cell_h / (1 + 2 * MARGIN), cell_w / (aspect * (1 + 2 * MARGIN)))
        face_h = min(180.0, usable * rng.uniform(0.75, 0.95))
        slack_x = max(0.0, (cell_w - face_h * aspect * (1 + 2 * MARGIN)) / 2)
        slack_y = max(0.0, (cell_h - face_h * (1 + 2 * MARGIN)) / 2)
        center = ((col + 0.5) * cell_w + rng.uniform(-slack_x, slack_x),
                  (row + 0.5) * cell_h + rng.uniform(-slack_y, slack_y))
        boxes.append(paste_face(frame, source, center, face_h, mirror=bool(i % 4 >= 2)))
    return frame, boxes
