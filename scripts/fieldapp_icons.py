"""Draw the field app's home-screen icons (PNG, 192 and 512 px) without an image library.

A green ring on the app's dark background, inside the central 80 % a maskable icon
keeps. Run by hand when the design changes; the result is committed.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "outreach" / "fieldapp" / "static"
BACKGROUND = (0x10, 0x14, 0x18)
RING = (0x5F, 0xD3, 0x9E)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def icon(size: int) -> bytes:
    centre = (size - 1) / 2
    outer, inner = size * 0.30, size * 0.20
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # no filter
        for x in range(size):
            distance = ((x - centre) ** 2 + (y - centre) ** 2) ** 0.5
            rows.extend(RING if inner <= distance <= outer else BACKGROUND)
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    for size in (192, 512):
        (STATIC / f"icon-{size}.png").write_bytes(icon(size))
