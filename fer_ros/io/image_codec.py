"""Camera image <-> ndarray conversion without cv_bridge (which breaks under numpy 2) and without ROS.

Works on the *fields* of sensor_msgs/Image and sensor_msgs/CompressedImage, so the same code decodes
rclpy messages (the node), rosbags messages (bag evaluation) and anything else with those fields.
Every decoder returns a C-contiguous uint8 array of shape (H, W, 3) in BGR order, the layout the
face detector and the debug overlay expect.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np

# encoding -> (channels, numpy dtype, cv2 conversion to BGR or None)
_RAW_ENCODINGS: dict[str, tuple[int, str, int | None]] = {
    'bgr8': (3, 'u1', None),
    'rgb8': (3, 'u1', cv2.COLOR_RGB2BGR),
    'bgra8': (4, 'u1', cv2.COLOR_BGRA2BGR),
    'rgba8': (4, 'u1', cv2.COLOR_RGBA2BGR),
    'mono8': (1, 'u1', cv2.COLOR_GRAY2BGR),
    '8UC1': (1, 'u1', cv2.COLOR_GRAY2BGR),
    '8UC3': (3, 'u1', None),
    'mono16': (1, 'u2', cv2.COLOR_GRAY2BGR),
    '16UC1': (1, 'u2', cv2.COLOR_GRAY2BGR),
    # packed 4:2:2, 2 bytes per pixel. ROS "yuv422" is UYVY; "yuv422_yuy2"/"yuyv" are YUYV.
    'yuv422': (2, 'u1', cv2.COLOR_YUV2BGR_UYVY),
    'uyvy': (2, 'u1', cv2.COLOR_YUV2BGR_UYVY),
    'yuv422_yuy2': (2, 'u1', cv2.COLOR_YUV2BGR_YUYV),
    'yuyv': (2, 'u1', cv2.COLOR_YUV2BGR_YUYV),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_RAW_ENCODINGS)
DEFAULT_MAX_PIXELS = 40_000_000  # bounded work: a frame larger than this is rejected, not processed


class ImageDecodeError(ValueError):
    """The message cannot be turned into an image; the text says which field is wrong."""


def decode_image(encoding: str, height: int, width: int, step: int, data, is_bigendian: int | bool = 0,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image fields -> uint8[H, W, 3] BGR.

    Honours ``step`` (row padding) and ``is_bigendian`` for 16-bit data; 16-bit gray is reduced to
    8 bits by dropping the low byte (value >> 8).

    Raises:
        ImageDecodeError: unknown encoding, zero or oversized dimensions, step smaller than a row,
            or fewer bytes than height * step.
    """
    if encoding not in _RAW_ENCODINGS:
        raise ImageDecodeError(f'unsupported encoding {encoding!r}; supported: {", ".join(SUPPORTED_ENCODINGS)}')
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'empty image: width={width} height={height}')
    if height * width > max_pixels:
        raise ImageDecodeError(f'image {width}x{height} has {height * width} pixels, above the limit {max_pixels}')
    channels, dtype, conversion = _RAW_ENCODINGS[encoding]
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageDecodeError(f'step {step} is smaller than one row of {width} {encoding} pixels ({row_bytes} bytes)')
    buf = np.frombuffer(memoryview(data), dtype=np.uint8)
    if buf.size < height * step:
        raise ImageDecodeError(f'data has {buf.size} bytes, expected height*step = {height}*{step} = {height * step}')
    rows = buf[:height * step].reshape(height, step)[:, :row_bytes]
    if itemsize == 1:
        pixels = rows.reshape(height, width, channels)
    else:
        big = bool(is_bigendian)
        wide = np.ascontiguousarray(rows).view(('>' if big else '<') + dtype).reshape(height, width, channels)
        pixels = (wide >> 8).astype(np.uint8)
    if conversion is None:
        return np.ascontiguousarray(pixels)
    if channels == 1:
        pixels = pixels[:, :, 0]
    try:
        return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)
    except cv2.error as exc:     # e.g. packed 4:2:2 with an odd width: say which image, keep OpenCV's text
        raise ImageDecodeError(f'{encoding} image {width}x{height} cannot be converted to BGR: '
                               f'{str(exc).strip()}') from None


PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
JPEG_SIGNATURE = b'\xff\xd8'
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the image size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def compressed_size(data, what: str = 'image') -> tuple[str, int, int]:
    """('png' | 'jpeg', width, height) read from a PNG or JPEG file's header, without decoding.

    Checking the size before decoding is what stops a decompression bomb (a few hundred KB that
    decode to gigabytes).

    Raises:
        ImageDecodeError: neither a PNG nor a JPEG, or a header too short to say its size.
    """
    head = bytes(memoryview(data)[:8])
    if head == PNG_SIGNATURE:
        ihdr = bytes(memoryview(data)[8:24])
        if len(ihdr) < 16 or ihdr[4:8] != b'IHDR':
            raise ImageDecodeError(f'{what} does not decode: PNG without an IHDR header')
        return 'png', int.from_bytes(ihdr[8:12], 'big'), int.from_bytes(ihdr[12:16], 'big')
    if head[:2] == JPEG_SIGNATURE:
        view = memoryview(data)
        i, n = 2, len(view)
        while i + 4 <= n:
            if view[i] != 0xFF:
                raise ImageDecodeError(f'{what} does not decode: JPEG marker expected at byte {i}')
            marker = view[i + 1]
            if marker == 0xFF:                      # fill byte
                i += 1
                continue
            if marker in (0x01,) or 0xD0 <= marker <= 0xD7:   # markers without a length
                i += 2
                continue
            length = (view[i + 2] << 8) | view[i + 3]
            if marker in _JPEG_SOF:
                if i + 9 > n:
                    break
                return 'jpeg', (view[i + 7] << 8) | view[i + 8], (view[i + 5] << 8) | view[i + 6]
            if marker == 0xDA or length < 2:        # scan data before any frame header: not a valid JPEG
                break
            i += 2 + length
        raise ImageDecodeError(f'{what} does not decode: JPEG without a frame header (SOF) giving its size')
    raise ImageDecodeError(f'{what} does not decode as JPEG or PNG (first bytes {head[:4]!r})')


def check_compressed_size(data, max_pixels: int, what: str = 'image') -> tuple[str, int, int]:
    """``compressed_size`` plus the pixel limit: ImageDecodeError before any decoding if exceeded."""
    kind, width, height = compressed_size(data, what)
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f'{what}: {kind} header gives an empty size {width}x{height}')
    if width * height > max_pixels:
        raise ImageDecodeError(f'{what}: {kind} header says {width}x{height} = {width * height} pixels, above '
                               f'the limit of {max_pixels}; not decoded')
    return kind, width, height


def decode_compressed(fmt: str, data, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage fields (format, data) -> uint8[H, W, 3] BGR. JPEG and PNG.

    The size in the file's header is checked against ``max_pixels`` before anything is decoded.

    Raises:
        ImageDecodeError: empty data, neither JPEG nor PNG, an oversized image, or bytes that do not decode.
    """
    buf = np.frombuffer(memoryview(data), dtype=np.uint8)
    if buf.size == 0:
        raise ImageDecodeError(f'empty CompressedImage (format {fmt!r})')
    check_compressed_size(buf, max_pixels, f'CompressedImage ({fmt!r}, {buf.size} bytes)')
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:                 # OpenCV assertion text: keep it, say what it was about
        raise ImageDecodeError(f'CompressedImage ({fmt!r}, {buf.size} bytes): OpenCV failed to decode it: '
                               f'{str(exc).strip()}') from None
    if image is None:
        raise ImageDecodeError(f'CompressedImage ({fmt!r}, {buf.size} bytes) does not decode as JPEG or PNG')
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageDecodeError(f'image {image.shape[1]}x{image.shape[0]} is above the limit of {max_pixels} pixels')
    return image


def decode_message(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A sensor_msgs/Image or CompressedImage (rclpy or rosbags object: the same field names) ->
    uint8[H, W, 3] BGR. The one image decoder of the node and the bag evaluation.

    Raises:
        ImageDecodeError: the message does not decode (the text says which field is wrong).
    """
    if hasattr(msg, 'encoding'):       # Image; CompressedImage has format + data only
        return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian,
                            max_pixels=max_pixels)
    return decode_compressed(msg.format, msg.data, max_pixels=max_pixels)


def encode_image(bgr: np.ndarray, encoding: str = 'bgr8') -> tuple[str, int, int, int, bytes, int]:
    """uint8[H, W, 3] BGR -> sensor_msgs/Image fields (encoding, height, width, step, data, is_bigendian).

    Supports bgr8, rgb8, mono8 and bgra8/rgba8 (for cameras, tests and bag writing).
    """
    conversions = {'bgr8': None, 'rgb8': cv2.COLOR_BGR2RGB, 'mono8': cv2.COLOR_BGR2GRAY,
                   'bgra8': cv2.COLOR_BGR2BGRA, 'rgba8': cv2.COLOR_BGR2RGBA}
    if encoding not in conversions:
        raise ValueError(f'encode_image: unsupported encoding {encoding!r}; use one of {sorted(conversions)}')
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f'encode_image expects uint8[H, W, 3] BGR, got {bgr.dtype}{list(bgr.shape)}')
    code = conversions[encoding]
    out = bgr if code is None else cv2.cvtColor(bgr, code)
    out = np.ascontiguousarray(out)
    height, width = out.shape[:2]
    step = out.strides[0]
    return encoding, height, width, step, out.tobytes(), int(sys.byteorder == 'big')


def encode_compressed(bgr: np.ndarray, fmt: str = 'jpeg', quality: int = 90) -> tuple[str, bytes]:
    """uint8[H, W, 3] BGR -> CompressedImage fields (format, data); fmt 'jpeg' or 'png'."""
    if fmt not in ('jpeg', 'png'):
        raise ValueError(f"encode_compressed: fmt must be 'jpeg' or 'png', got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    ok, buf = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', bgr, params)
    if not ok:
        raise ValueError(f'encode_compressed: OpenCV could not encode a {bgr.shape} image as {fmt}')
    return fmt, buf.tobytes()
