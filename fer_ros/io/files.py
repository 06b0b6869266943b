"""File helpers shared by the tools, the backends and training: content hash, atomic writes, image files."""
from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator

import numpy as np

# OpenCV (and the image codec built on it) is imported where an image is decoded: the backends and the
# checkpoint format use the hashing and atomic writes here on machines without OpenCV (`make gpu-check` on a
# bare GPU host).

# Still-image files the tools read (fer-infer, INT8 calibration, image-folder datasets, fer-make-bag --images).
IMAGE_SUFFIXES: tuple[str, ...] = ('.png', '.jpg', '.jpeg', '.bmp', '.pgm', '.ppm', '.tif', '.tiff', '.webp')


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed.

    A reader (or a crash mid-write) never sees half a file: the rename is atomic on one file system.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_onnx(proto, out: str) -> None:
    """Write an ONNX ModelProto to ``out`` atomically (never a half-written default model)."""
    import onnx  # only the model converters call this; onnx is not a run-time dependency

    with atomic_path(out) as tmp:
        onnx.save(proto, tmp)


def atomic_write_bytes(path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through ``atomic_path``."""
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        f.write(payload)


def read_image(path: str, max_pixels: int | None = None) -> np.ndarray:
    """uint8[H, W, 3] BGR from an image file (works for non-ASCII paths too). A PNG or JPEG with more
    than ``max_pixels`` pixels (None = image_codec.DEFAULT_MAX_PIXELS) is refused from its header, before
    decoding (a decompression bomb: a few hundred KB that decode to gigabytes); other formats are checked
    after decoding.

    Raises:
        ValueError: missing, empty, oversized or undecodable file (the message says which, not the path:
            callers name the file).
    """
    import cv2

    from fer_ros.io.image_codec import (
        DEFAULT_MAX_PIXELS,
        JPEG_SIGNATURE,
        PNG_SIGNATURE,
        ImageDecodeError,
        check_compressed_size,
    )
    max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if not os.path.isfile(path):
        raise ValueError('no such file')
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f'cannot read: {exc.strerror or exc}') from None
    if data.size == 0:
        raise ValueError('empty file')
    if bytes(data[:8]) == PNG_SIGNATURE or bytes(data[:2]) == JPEG_SIGNATURE:
        try:
            check_compressed_size(data, max_pixels, 'the file')
        except ImageDecodeError as exc:
            raise ValueError(str(exc).replace('the file: ', '').replace('the file ', '')) from None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ValueError(f'OpenCV failed to decode it: {str(exc).strip()}') from None
    if image is None:
        raise ValueError(f'not a decodable image ({data.size} bytes)')
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ValueError(f'{image.shape[1]}x{image.shape[0]} is above the limit of {max_pixels} pixels')
    return image
