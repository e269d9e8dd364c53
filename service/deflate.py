"""zlib streams compressed on several cores at once, as pigz does."""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

# Fixed, never derived from the core count: the same input must give the same bytes (and so
# the same content-addressed name) on every node.
PIECE_BYTES = 2 * 1024 * 1024
_WORKERS = min(4, os.cpu_count() or 1)
_POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="deflate")
_ZLIB_HEADER_FAST = b"\x78\x01"  # deflate, 32 KiB window, "fastest" level hint


def _piece(data: memoryview, level: int, strategy: int, last: bool) -> bytes:
    deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 9, strategy)
    # A full flush ends each piece on a byte boundary with no back-references out of it,
    # so the raw pieces concatenate into one valid deflate stream.
    return deflate.compress(data) + deflate.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)


def compress(data: bytes, level: int, strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
    """One zlib stream of `data`; zlib releases the GIL, so the pieces run in parallel."""
    if len(data) <= PIECE_BYTES:
        deflate = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS, 9, strategy)
        return deflate.compress(data) + deflate.flush()
    view = memoryview(data)
    last = (len(data) - 1) // PIECE_BYTES * PIECE_BYTES
    futures = [
        _POOL.submit(_piece, view[start : start + PIECE_BYTES], level, strategy, start == last)
        for start in range(0, len(data), PIECE_BYTES)
    ]
    body = b"".join(future.result() for future in futures)
    return _ZLIB_HEADER_FAST + body + struct.pack(">I", zlib.adler32(data))
