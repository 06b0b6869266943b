"""Decompression bombs for tests: small files whose headers claim huge images."""
from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit grayscale PNG of width x height black pixels: ~50 KB that OpenCV would decode to
    width*height*3 bytes of BGR (1.2 GB for the default 20000 x 20000)."""
    row = b'\x00' * (1 + (width + 7) // 8)        # filter byte + packed bits
    comp = zlib.compressobj(9)
    body = b''.join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', ihdr) + _chunk(b'IDAT', body) + _chunk(b'IEND', b'')


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to claim width x height."""
    i = jpeg.index(b'\xff\xc0')
    return jpeg[:i + 5] + struct.pack('>HH', height, width) + jpeg[i + 9:]
