"""8-bit greyscale PNGs (with or without alpha) written from rows as they come, never whole.

Each row gets the "Up" filter (its difference from the row above), computed a strip at a time
by Pillow, and the filtered rows go through service.deflate's parallel zlib stream, one IDAT
chunk per compressed piece. What the writer holds is its output and a few pieces of input.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable

from PIL import Image, ImageChops

from service import deflate

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UP_FILTER = 2
# PNG colour types by Pillow mode: 0 is greyscale, 4 greyscale with alpha.
COLOUR_TYPES = {"L": 0, "LA": 4}
_BYTES_PER_PIXEL = {"L": 1, "LA": 2}
# Chosen by measurement (bench/greyscale.py, on photos, screenshots, charts and gradients):
# zlib's run-length strategy at level 1 packs noisy photos' filtered rows as small as
# Pillow's default encoder does, several times faster; smooth photos, screenshots, graphics
# and gradients need string matches (level 6, as Pillow's default). A sample of each piece
# tells which: level 6 where it makes the sample at least 8% smaller, or where level 1 packs
# the sample to a sixteenth or less (a sample of flat rows, which says nothing).
DEFLATE = deflate.Choice(
    first=deflate.Setting(1, zlib.Z_RLE), second=deflate.Setting(6), better=0.92
)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header(width: int, height: int, mode: str) -> bytes:
    """The signature and the IHDR chunk of an 8-bit, non-interlaced PNG in `mode`."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[mode], 0, 0, 0)
    return SIGNATURE + chunk(b"IHDR", ihdr)


def up_filtered(strip: Image.Image, above: bytes) -> tuple[bytes, bytes]:
    """The rows of `strip` (mode L or LA), each with its filter byte, and its last row.

    `above` is the row before the strip (all zeros for the first one).
    """
    row_bytes, height = len(above), strip.height
    rows = Image.frombytes("L", (row_bytes, height), strip.tobytes())
    previous = Image.new("L", (row_bytes, height))
    previous.paste(Image.frombytes("L", (row_bytes, 1), above), (0, 0))
    if height > 1:
        previous.paste(rows.crop((0, 0, row_bytes, height - 1)), (0, 1))
    filtered = Image.new("L", (row_bytes + 1, height), _UP_FILTER)
    filtered.paste(ImageChops.subtract_modulo(rows, previous), (1, 0))
    last = rows.crop((0, height - 1, row_bytes, height)).tobytes()
    return filtered.tobytes(), last


def write(width: int, height: int, mode: str, strips: Iterable[Image.Image]) -> bytes:
    """A PNG of the strips (images of `mode`, `width` wide, top to bottom, `height` rows).

    The output grows in one buffer that becomes the returned bytes without a copy, so the
    writer's peak is about its output's size.
    """
    out = io.BytesIO()
    out.write(header(width, height, mode))
    stream = deflate.Stream(DEFLATE)
    above = bytes(width * _BYTES_PER_PIXEL[mode])
    rows = 0
    for strip in strips:
        filtered, above = up_filtered(strip, above)
        rows += strip.height
        for piece in stream.feed(filtered):
            _write_chunk(out, b"IDAT", piece)
    if rows != height:
        raise OSError(f"image file is truncated ({rows} of {height} rows)")
    for piece in stream.finish():
        _write_chunk(out, b"IDAT", piece)
    _write_chunk(out, b"IEND", b"")
    return out.getvalue()


def _write_chunk(out: io.BytesIO, kind: bytes, data: bytes) -> None:
    out.write(struct.pack(">I", len(data)) + kind)
    out.write(data)
    out.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))
