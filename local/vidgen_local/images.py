"""Small real images for demos and tests (no image library needed)."""

from __future__ import annotations

import base64
import struct
import zlib


def png(width: int, height: int, shade: int = 128) -> bytes:
    """A grey PNG of the given size; Kling wants at least 300 px a side."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    rows = b''.join(b'\x00' + bytes([shade]) * width for _ in range(height))
    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b'')


def png_data_uri(width: int = 320, height: int = 320, shade: int = 128) -> str:
    return 'data:image/png;base64,' + base64.b64encode(png(width, height, shade)).decode()
