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


def _face_patch(source: FaceSource, mirror: bool, photo: np.ndarray | None = None) -> tuple[np.ndarray, Box]:
    """Crop (face box + MARGIN) of a source photo (or of ``photo``, an edited copy of it) and the face
    box inside that crop."""
    image = load_asset(source.image) if photo is None else photo
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
               mirror: bool = False, photo: np.ndarray | None = None) -> Box:
    """Paste a source face into ``frame`` (in place) so the face box is ``face_height`` px tall and
    centred on ``center``; returns the face box (x, y, w, h) in frame pixels (clipped to the frame).
    photo: an edited copy of the source photo (same size) to take the face from instead."""
    patch, (fx, fy, fw, fh) = _face_patch(source, mirror, photo)
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


# --- expression fixtures ------------------------------------------------------------------------------
# The repository ships no photo of a frightened face that may be redistributed, so the STOP tests and
# `make bench-stop` use the astronaut's face edited until the shipped classifier (the FER2013
# mini-Xception) reads fear in it: exposure, a tilt, raised brows or wider eyes, and the mouth covered
# as by a hand. The edits were chosen by a search over these few parameters against the real
# classifier (full-frame and ROI crops of the real detector); they make no claim about how a real
# frightened face looks. assets/README.md has the provenance and the probabilities.

@dataclass(frozen=True)
class FaceEdit:
    """Edits of a source photo, applied in this order around its face box (x, y, w, h).

    gamma, contrast: exposure (``pixel ** gamma`` on 0..1, then contrast about mid-grey).
    eye_stretch: the eye band (25-50 % of the face height) stretched vertically by this factor.
    brow_lift: the brow band (10-35 %) moved up by this many pixels.
    cover: the lower ``cover`` fraction of the face covered in ``cover_bgr`` ('rect' or 'ellipse').
    tilt_deg: rotation about the face centre. blur_sigma: Gaussian blur (0: none).
    """

    gamma: float = 1.0
    contrast: float = 1.0
    eye_stretch: float = 1.0
    brow_lift: int = 0
    cover: float = 0.0
    cover_bgr: tuple[int, int, int] = (0, 0, 0)
    cover_shape: str = 'rect'
    tilt_deg: float = 0.0
    blur_sigma: float = 0.0


# file name in assets/ -> the astronaut's face edited so (frames of 640x480, the face 170 px tall)
EXPRESSION_FIXTURES: dict[str, FaceEdit] = {
    # read as scared (about 0.7-0.8) in full-frame and ROI crops
    'scared_face.jpg': FaceEdit(gamma=0.56, contrast=0.67, eye_stretch=1.03, brow_lift=6, cover=0.27,
                                cover_bgr=(86, 60, 164), cover_shape='ellipse', tilt_deg=-5.95, blur_sigma=0.97),
    # the face with wide eyes and the mouth covered, read as surprised: shown in turn with scared_face.jpg
    # (as the node sees them: ROI crops from the previous frame's box), the winner wobbles between scared
    # and surprised while the smoothed fear stays above STOP's threshold
    'fear_surprise_face.jpg': FaceEdit(gamma=1.34, contrast=1.2, eye_stretch=1.31, cover=0.33,
                                       cover_bgr=(136, 204, 243), tilt_deg=2.73, blur_sigma=1.6),
}
# A frame in which the detector finds nobody, in full frames and in ROI windows around the fixtures' face
# (the "missed detection" frames of the STOP tests): the face hidden behind an occluder (a dark sleeve in
# front of it). Not the background alone: the coffee cup behind the face, searched at the scale of an ROI
# window made for the face, reads as a face (score ~0.6, the detector's threshold) in about half of the
# windows within 3 px of the tracked box.
NO_FACE = 'no_face.jpg'
NO_FACE_OCCLUDER = ((110, 130), (70, 50, 40))     # ellipse half-axes (px) centred on the face, BGR colour
FIXTURE_SIZE = (640, 480)


def edited_photo(source: FaceSource, edit: FaceEdit) -> np.ndarray:
    """uint8[H, W, 3] BGR copy of ``source``'s photo with ``edit`` applied (see FaceEdit)."""
    unit = load_asset(source.image).astype(np.float32) / 255
    img: np.ndarray = ((np.clip(((unit ** edit.gamma) - 0.5) * edit.contrast + 0.5, 0, 1)) * 255 + 0.5).astype(np.uint8)
    x, y, w, h = source.box
    if edit.eye_stretch != 1.0:
        y0, y1 = int(y + 0.25 * h), int(y + 0.5 * h)
        stretched = cv2.resize(img[y0:y1, x:x + w], (w, int(round((y1 - y0) * edit.eye_stretch))),
                               interpolation=cv2.INTER_CUBIC)
        top = (stretched.shape[0] - (y1 - y0)) // 2
        img[y0:y1, x:x + w] = stretched[top:top + y1 - y0]
    if edit.brow_lift:
        y0, y1 = int(y + 0.1 * h), int(y + 0.35 * h)
        img[y0 - edit.brow_lift:y1 - edit.brow_lift, x:x + w] = img[y0:y1, x:x + w].copy()
    if edit.cover > 0:
        colour = tuple(int(c) for c in edit.cover_bgr)
        if edit.cover_shape == 'rect':
            cv2.rectangle(img, (x - 5, int(y + h * (1 - edit.cover))), (x + w + 5, y + h + 10), colour, -1)
        else:
            cv2.ellipse(img, (x + w // 2, y + h), (int(w * 0.6), int(h * edit.cover)), 0, 0, 360, colour, -1)
    if edit.tilt_deg:
        matrix = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), edit.tilt_deg, 1.0)
        img = cv2.warpAffine(img, matrix, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)
    if edit.blur_sigma:
        img = cv2.GaussianBlur(img, (0, 0), edit.blur_sigma)
    return img


def fixture_frame(name: str) -> np.ndarray:
    """The 640x480 frame of an expression fixture (EXPRESSION_FIXTURES or NO_FACE), as the generator makes
    it (the committed assets/<name> is this frame as a JPEG)."""
    frame = background(FIXTURE_SIZE).copy()
    centre = (FIXTURE_SIZE[0] // 2, FIXTURE_SIZE[1] // 2)
    if name == NO_FACE:
        axes, colour = NO_FACE_OCCLUDER
        cv2.ellipse(frame, centre, axes, 0, 0, 360, colour, -1)
    else:
        source = FACE_SOURCES[0]
        paste_face(frame, source, centre, 170.0, photo=edited_photo(source, EXPRESSION_FIXTURES[name]))
    return frame


def write_fixtures(folder: str) -> list[str]:
    """Write every expression fixture into ``folder`` as JPEG (quality 92); returns the paths."""
    import os
    paths = []
    for name in (*EXPRESSION_FIXTURES, NO_FACE):
        path = os.path.join(folder, name)
        if not cv2.imwrite(path, fixture_frame(name), [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise OSError(f'cannot write {path}')
        paths.append(path)
    return paths


if __name__ == '__main__':      # python -m fer_ros.sample_frames assets/   (regenerates the fixtures)
    import sys
    print('\n'.join(write_fixtures(sys.argv[1] if len(sys.argv) > 1 else '.')))
