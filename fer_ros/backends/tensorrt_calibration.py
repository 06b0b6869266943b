"""INT8 calibration data for the TensorRT engine builder: face crops preprocessed as the pipeline does.

A folder of face-crop images (one face per file) becomes float32[N, C, H, W] batches through
``fer_ros.perception.preprocess.crop_faces``; their digest is part of the INT8 engine's cache key, and
``make_calibrator`` feeds them to TensorRT's IInt8EntropyCalibrator2 from one device buffer.
"""
from __future__ import annotations

import hashlib
import logging
import os

import numpy as np

from fer_ros.core.spec import ModelSpec
from fer_ros.io.files import IMAGE_SUFFIXES, atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

DEFAULT_MAX_CALIB_IMAGES = 512


def calibration_files(calib_dir: str) -> list[str]:
    """Image files (by suffix, case-insensitive) directly in ``calib_dir``, sorted by name.

    Raises:
        ValueError: not a folder, or no image file in it.
    """
    if not os.path.isdir(calib_dir):
        raise ValueError(f'calibration folder not found: {calib_dir}')
    files = sorted(os.path.join(calib_dir, n) for n in os.listdir(calib_dir)
                   if n.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(calib_dir, n)))
    if not files:
        raise ValueError(f'{calib_dir}: no image files ({", ".join(IMAGE_SUFFIXES)}) for INT8 calibration')
    return files


def calibration_digest(files: list[str]) -> str:
    """Hex sha256 over the files' names and contents (part of the INT8 engine key)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.basename(path).encode() + b'\0' + sha256_file(path).encode())
    return digest.hexdigest()


def load_calibration_images(calib_dir: str, spec: ModelSpec, max_images: int = DEFAULT_MAX_CALIB_IMAGES) -> np.ndarray:
    """Face crops from a folder, preprocessed exactly as the pipeline does (``fer_ros.perception.preprocess``).

    Each file is one face crop (any size, colour or gray); it is treated as a face box covering the
    whole image with no margin: squared by edge replication, resized to the model's input size,
    converted to gray/RGB and normalised with the spec's mean/std. Files that cannot be decoded are
    skipped with a warning naming them.

    Args:
        calib_dir: folder of images; the first ``max_images`` by name are used.
        spec: the model's input contract.
    Returns:
        float32[N, spec.channels, spec.height, spec.width], N >= 1.
    Raises:
        ValueError: no folder, no image file, or no decodable image.
    """
    import cv2

    from fer_ros.perception.preprocess import crop_faces

    if max_images < 1:
        raise ValueError(f'max_images must be >= 1, got {max_images}')
    files = calibration_files(calib_dir)[:max_images]
    batches, bad = [], []
    for path in files:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            bad.append(os.path.basename(path))
            continue
        height, width = image.shape[:2]
        batches.append(crop_faces(image, [(0.0, 0.0, float(width), float(height))], spec, margin=0.0))
    if bad:
        log.warning('%s: skipped %d file(s) that are not readable images: %s', calib_dir, len(bad), ', '.join(bad))
    if not batches:
        raise ValueError(f'{calib_dir}: none of the {len(files)} image file(s) could be decoded: {", ".join(bad)}')
    if len(batches) < 50:
        log.warning('%s: only %d calibration image(s); INT8 ranges from so few faces may be poor '
                    '(use a few hundred crops of the deployment camera)', calib_dir, len(batches))
    return np.concatenate(batches)


def calibration_batches(images: np.ndarray, batch_size: int) -> np.ndarray:
    """Split float32[N, C, H, W] into full batches float32[M, batch_size, C, H, W]; the last batch is
    completed with images from the start (the calibrator needs a fixed batch size)."""
    if batch_size < 1 or len(images) < 1:
        raise ValueError(f'need batch_size >= 1 and at least one image, got {batch_size} and {len(images)}')
    batches = -(-len(images) // batch_size)
    index = np.arange(batches * batch_size) % len(images)
    return np.ascontiguousarray(images[index].reshape(batches, batch_size, *images.shape[1:]))


def make_calibrator(trt, cuda, batches: np.ndarray, cache_path: str):
    """An IInt8EntropyCalibrator2 feeding ``batches`` float32[M, B, C, H, W] from one device buffer."""
    try:
        from tqdm import tqdm
    except ImportError:  # progress is nice to have, not needed
        tqdm = None

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            with cuda.activate():
                self.device = cuda.malloc(batches[0].nbytes)
            self.bar = tqdm(total=len(batches), desc='INT8 calibration', unit='batch') if tqdm else None

        def get_batch_size(self) -> int:
            return int(batches.shape[1])

        def get_batch(self, names):
            if self.index >= len(batches):
                if self.bar is not None:
                    self.bar.close()
                return None
            with cuda.activate():
                cuda.htod(self.device, batches[self.index])
                cuda.synchronize()
            self.index += 1
            if self.bar is not None:
                self.bar.update(1)
            return [self.device]

        def read_calibration_cache(self):
            return None  # always calibrate: the engine key already covers model and data

        def write_calibration_cache(self, cache) -> None:
            atomic_write_bytes(cache_path, bytes(cache))  # kept beside the engine for inspection / trtexec

        def release(self) -> None:
            with cuda.activate():
                cuda.free(self.device)

    return _Calibrator()
