"""Small real image files for tests, written with the standard library only.

``png`` is a whole, decodable PNG (a browser draws it); ``jpeg_header`` is only a JPEG's
start (SOI and a frame header), enough for code that reads headers, not for a browser.
"""

from __future__ import annotations

import struct
import zlib

_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> channels (grey, RGB, grey+A, RGBA)


def png(width: int = 2, height: int = 2, *, color_type: int = 2, seed: int = 0) -> bytes:
    """A PNG of ``color_type`` (2: RGB, 6: RGBA, 0: grey); ``seed`` changes its pixels."""
    channels = _CHANNELS[color_type]
    rows = b"".join(
        b"\x00"
        + bytes(
            (seed + x * 40 + y * 80 + c * 10) % 256 for x in range(width) for c in range(channels)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg_header(components: int = 3) -> bytes:
    """A JPEG's SOI, an APP0 segment and a baseline frame header with ``components``."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 8 + 3 * components, 8, 2, 2, components)
    sof += b"".join(bytes((i + 1, 0x11, 0)) for i in range(components))
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
