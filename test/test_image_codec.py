"""fer_ros.io.image_codec: every raw encoding (incl. row padding, 16-bit endianness, YUV 4:2:2),
compressed images, encoding, and the errors that name the bad field."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_ros.io.image_codec import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    compressed_size,
    decode_compressed,
    decode_image,
    encode_compressed,
    encode_image,
)


def bgr_image(height=6, width=8) -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Row bytes of ``rows`` (H, row_bytes) with ``pad`` junk bytes after every row -> (data, step)."""
    rows = rows.reshape(rows.shape[0], -1)
    junk = np.full((rows.shape[0], pad), 0xAB, np.uint8)
    return np.concatenate([rows, junk], axis=1).tobytes(), rows.shape[1] + pad


@pytest.mark.parametrize('pad', [0, 3])
@pytest.mark.parametrize('encoding', ['bgr8', '8UC3', 'rgb8', 'bgra8', 'rgba8'])
def test_colour_encodings(encoding, pad):
    bgr = bgr_image()
    raw = {'bgr8': bgr, '8UC3': bgr, 'rgb8': bgr[:, :, ::-1],
           'bgra8': np.dstack([bgr, np.full(bgr.shape[:2], 9, np.uint8)]),
           'rgba8': np.dstack([bgr[:, :, ::-1], np.full(bgr.shape[:2], 9, np.uint8)])}[encoding]
    data, step = padded(np.ascontiguousarray(raw), pad)
    out = decode_image(encoding, 6, 8, step, data)
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3) and out.flags.c_contiguous
    assert np.array_equal(out, bgr)


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
def test_mono8(encoding):
    gray = bgr_image()[:, :, 0]
    data, step = padded(gray, 5)
    out = decode_image(encoding, 6, 8, step, data)
    assert np.array_equal(out, np.dstack([gray] * 3))


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
@pytest.mark.parametrize('big_endian', [False, True])
def test_mono16_keeps_the_high_byte_in_either_byte_order(encoding, big_endian):
    values = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1361 + 7).astype(np.uint16)  # spans 0..65535
    wire = values.astype('>u2' if big_endian else '<u2')
    data, step = padded(wire.view(np.uint8), 2)
    out = decode_image(encoding, 6, 8, step, data, is_bigendian=big_endian)
    assert np.array_equal(out[:, :, 0], (values >> 8).astype(np.uint8))
    assert np.array_equal(out[:, :, 0], out[:, :, 2])
    # the wrong byte order gives a different image: endianness is really honoured
    wrong = decode_image(encoding, 6, 8, step, data, is_bigendian=not big_endian)
    assert not np.array_equal(wrong, out)


def yuv422_bytes(order: str, y: np.ndarray, u: int = 128, v: int = 128) -> np.ndarray:
    """Packed 4:2:2 rows (H, W*2) from luma y (H, W) and constant chroma; order 'uyvy' or 'yuyv'."""
    h, w = y.shape
    out = np.empty((h, w // 2, 4), np.uint8)
    if order == 'uyvy':
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    else:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    return out.reshape(h, w * 2)


@pytest.mark.parametrize('encoding, order', [('yuv422', 'uyvy'), ('uyvy', 'uyvy'),
                                             ('yuv422_yuy2', 'yuyv'), ('yuyv', 'yuyv')])
def test_yuv422_byte_orders(encoding, order):
    y = np.tile(np.array([40, 220], np.uint8), (4, 4))          # dark, bright, dark, bright...
    data, step = padded(yuv422_bytes(order, y), 4)
    out = decode_image(encoding, 4, 8, step, data)
    assert out.shape == (4, 8, 3)
    # neutral chroma -> gray pixels; luma order preserved (ROS 'yuv422' is UYVY)
    assert np.all(np.abs(out.astype(int) - out[:, :, :1].astype(int)) <= 1)
    assert np.all(out[:, 0::2, 0] < 60) and np.all(out[:, 1::2, 0] > 200)


def test_yuv422_colour():
    y = np.full((2, 4), 82, np.uint8)                              # BT.601 red: Y 82, U 90, V 240
    out = decode_image('yuv422', 2, 4, 8, yuv422_bytes('uyvy', y, u=90, v=240).tobytes())
    b, g, r = (int(c) for c in out[0, 0])
    assert r > 200 and g < 40 and b < 40


def test_every_supported_encoding_is_tested():
    tested = {'bgr8', '8UC3', 'rgb8', 'bgra8', 'rgba8', 'mono8', '8UC1', 'mono16', '16UC1',
              'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'}
    assert set(SUPPORTED_ENCODINGS) == tested


@pytest.mark.parametrize('kwargs, match', [
    ({'encoding': 'bayer_rggb8'}, 'unsupported encoding'),
    ({'height': 0}, 'empty image'),
    ({'width': -1}, 'empty image'),
    ({'step': 23}, 'step 23'),
    ({'data': bytes(6 * 24 - 1)}, 'expected height\\*step'),
    ({'max_pixels': 47}, 'above the limit'),
])
def test_decode_errors_name_the_field(kwargs, match):
    args = dict(encoding='bgr8', height=6, width=8, step=24, data=bytes(6 * 24))
    args.update(kwargs)
    with pytest.raises(ImageDecodeError, match=match):
        decode_image(**args)


def test_decode_accepts_any_buffer_type():
    bgr = bgr_image()
    for data in (bgr.tobytes(), bytearray(bgr.tobytes()), memoryview(bgr.tobytes()), bgr.reshape(-1)):
        assert np.array_equal(decode_image('bgr8', 6, 8, 24, data), bgr)


@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8', 'bgra8', 'rgba8', 'mono8'])
def test_encode_decode_round_trip(encoding):
    bgr = bgr_image()
    enc, height, width, step, data, big = encode_image(bgr, encoding)
    assert (enc, height, width) == (encoding, 6, 8) and len(data) == height * step
    out = decode_image(enc, height, width, step, data, big)
    expected = np.dstack([cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)] * 3) if encoding == 'mono8' else bgr
    assert np.array_equal(out, expected)


def test_encode_errors():
    with pytest.raises(ValueError, match='unsupported encoding'):
        encode_image(bgr_image(), 'yuv422')
    with pytest.raises(ValueError, match='uint8'):
        encode_image(bgr_image().astype(np.float32))
    with pytest.raises(ValueError, match='fmt'):
        encode_compressed(bgr_image(), 'webp')


def test_compressed_round_trip():
    bgr = bgr_image(32, 48)
    fmt, data = encode_compressed(bgr, 'png')
    assert fmt == 'png' and np.array_equal(decode_compressed(fmt, data), bgr)
    smooth = np.dstack([np.tile(np.arange(48, dtype=np.uint8) * 5, (32, 1))] * 3)
    fmt, data = encode_compressed(smooth, 'jpeg', quality=95)
    out = decode_compressed(fmt, data)
    assert out.shape == (32, 48, 3) and np.abs(out.astype(int) - smooth).mean() < 3


@pytest.mark.parametrize('data, match', [(b'', 'empty'), (b'\xff\xd8 not a jpeg', 'does not decode')])
def test_compressed_errors(data, match):
    with pytest.raises(ImageDecodeError, match=match):
        decode_compressed('jpeg', data)


def test_compressed_size_limit():
    _, data = encode_compressed(bgr_image(20, 20), 'png')
    with pytest.raises(ImageDecodeError, match='limit'):
        decode_compressed('png', data, max_pixels=399)


def test_png_bomb_is_refused_from_its_header_before_decoding():
    from image_bombs import png_bomb
    bomb = png_bomb(20000, 20000)             # ~50 KB that would decode to 1.2 GB
    assert len(bomb) < 100_000
    with pytest.raises(ImageDecodeError, match='20000x20000.*not decoded'):
        decode_compressed('png', bomb)


def test_jpeg_claiming_a_huge_size_is_refused_before_decoding():
    from image_bombs import jpeg_claiming
    _, data = encode_compressed(bgr_image(20, 20), 'jpeg')
    with pytest.raises(ImageDecodeError, match='30000x20000.*not decoded'):
        decode_compressed('jpeg', jpeg_claiming(data, 30000, 20000))
    assert compressed_size(data) == ('jpeg', 20, 20)


def test_other_formats_than_jpeg_and_png_are_refused():
    ok, bmp = cv2.imencode('.bmp', bgr_image(8, 8))
    with pytest.raises(ImageDecodeError, match='JPEG or PNG'):
        decode_compressed('bmp', bmp.tobytes())


def test_opencv_assertions_become_decode_errors_naming_the_image():
    with pytest.raises(ImageDecodeError, match='yuv422 image 3x2 cannot be converted.*Assertion'):
        decode_image('yuv422', 2, 3, 6, bytes(12))
