"""zlib streams compressed on several cores at once, as pigz does."""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

# Fixed, never derived from the core count: the same input must give the same bytes (and so
# the same content-addressed name) on every node.
PIECE_BYTES = 2 * 1024 * 1024
_WORKERS = min(4, os.cpu_count() or 1)
_POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="deflate")
_ZLIB_HEADER_FAST = b"\x78\x01"  # deflate, 32 KiB window, "fastest" level hint


class Setting(NamedTuple):
    """A zlib compression level and strategy."""

    level: int
    strategy: int = zlib.Z_DEFAULT_STRATEGY


class Choice(NamedTuple):
    """Compress with `first`; where that leaves less than `below` of a piece, also with
    `second`, and keep whichever is smaller. Decided by the bytes alone: deterministic."""

    first: Setting
    second: Setting | None = None
    below: float = 0.0


def _deflate(data: memoryview, setting: Setting, last: bool) -> bytes:
    deflate = zlib.compressobj(setting.level, zlib.DEFLATED, -zlib.MAX_WBITS, 9, setting.strategy)
    # A full flush ends each piece on a byte boundary with no back-references out of it,
    # so the raw pieces concatenate into one valid deflate stream.
    return deflate.compress(data) + deflate.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)


def _piece(data: memoryview, choice: Choice, last: bool) -> bytes:
    out = _deflate(data, choice.first, last)
    if choice.second is not None and len(out) < choice.below * len(data):
        other = _deflate(data, choice.second, last)
        if len(other) < len(out):
            return other
    return out


def compress(data: bytes, choice: Choice) -> bytes:
    """One zlib stream of `data`; zlib releases the GIL, so the pieces run in parallel."""
    view = memoryview(data)
    if len(data) <= PIECE_BYTES:
        body = _piece(view, choice, True)
    else:
        last = (len(data) - 1) // PIECE_BYTES * PIECE_BYTES
        futures = [
            _POOL.submit(_piece, view[start : start + PIECE_BYTES], choice, start == last)
            for start in range(0, len(data), PIECE_BYTES)
        ]
        body = b"".join(future.result() for future in futures)
    return _ZLIB_HEADER_FAST + body + struct.pack(">I", zlib.adler32(data))
