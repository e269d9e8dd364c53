"""zlib streams compressed on several cores at once, as pigz does, a piece at a time.

Only the C library zlib compresses here (Python's `zlib` module, the system's zlib): it has
no code chosen by the processor at run time, so the same bytes in give the same bytes out on
every CPU. zlib-ng, which libvips's own PNG encoder uses, promises no such thing.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

# Fixed, never derived from the core count: the same input must give the same bytes (and so
# the same content-addressed name) on every node.
PIECE_BYTES = 1024 * 1024
_WORKERS = min(4, os.cpu_count() or 1)
_POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="deflate")
# Pieces handed to the pool and not yet collected: what a stream holds beyond its output.
IN_FLIGHT = _WORKERS
_ZLIB_HEADER_FAST = b"\x78\x01"  # deflate, 32 KiB window, "fastest" level hint


class Setting(NamedTuple):
    """A zlib compression level and strategy."""

    level: int
    strategy: int = zlib.Z_DEFAULT_STRATEGY


class Choice(NamedTuple):
    """Compress each piece with `first`, or with `second` where a sample says it pays.

    The sample is `slices` runs of `slice_bytes` taken evenly across the piece (the top of
    a screenshot is its flat title bar), compressed both ways: `second` is used for the
    whole piece when its sample comes out at most `better` times the size of `first`'s, or
    when `first` alone packs the sample to 1/`flat` of its size or less.
    Decided by the bytes alone, so deterministic; each piece is compressed once.
    """

    first: Setting
    second: Setting | None = None
    better: float = 0.0
    slices: int = 8
    slice_bytes: int = 4096
    # A sample that `first` packs to 1/flat of its size or less is too empty to tell: the runs
    # all fell in flat rows between a screenshot's text lines, say, where both settings pack
    # alike. `second` then, which costs little on such data and misses no string matches.
    flat: int = 16


def _deflate(data: memoryview | bytes, setting: Setting, last: bool) -> bytes:
    deflate = zlib.compressobj(setting.level, zlib.DEFLATED, -zlib.MAX_WBITS, 9, setting.strategy)
    # A full flush ends each piece on a byte boundary with no back-references out of it,
    # so the raw pieces concatenate into one valid deflate stream.
    return deflate.compress(data) + deflate.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)


def setting_for(data: memoryview, choice: Choice) -> Setting:
    """The setting `choice` picks for a piece whose bytes are `data`."""
    if choice.second is None:
        return choice.first
    step = max(choice.slice_bytes, len(data) // choice.slices)
    sample = b"".join(
        data[start : start + choice.slice_bytes] for start in range(0, len(data), step)
    )
    first = len(_deflate(sample, choice.first, True))
    if first * choice.flat <= len(sample):
        return choice.second
    second = len(_deflate(sample, choice.second, True))
    return choice.second if second <= choice.better * first else choice.first


def _piece(data: memoryview, choice: Choice, last: bool) -> bytes:
    return _deflate(data, setting_for(data, choice), last)


class Stream:
    """One zlib stream, fed in order; full pieces are compressed in the pool meanwhile.

    `feed` returns the compressed pieces that are done, in order, so that the caller can
    write them out and hold no more than IN_FLIGHT pieces of input at once.
    """

    def __init__(self, choice: Choice) -> None:
        self._choice = choice
        self._pending = bytearray()
        self._futures: deque[Future[bytes]] = deque()
        self._adler = zlib.adler32(b"")
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._adler = zlib.adler32(data, self._adler)
        self._pending += data
        while len(self._pending) > PIECE_BYTES:
            # Strictly more than a piece: the last piece, which ends the stream, stays.
            piece = bytes(self._pending[:PIECE_BYTES])
            del self._pending[:PIECE_BYTES]
            self._futures.append(_POOL.submit(_piece, memoryview(piece), self._choice, False))
            if len(self._futures) >= IN_FLIGHT:
                yield self._header() + self._futures.popleft().result()

    def finish(self) -> Iterator[bytes]:
        last = _POOL.submit(_piece, memoryview(bytes(self._pending)), self._choice, True)
        self._pending = bytearray()
        self._futures.append(last)
        while len(self._futures) > 1:
            yield self._header() + self._futures.popleft().result()
        yield self._header() + self._futures.popleft().result() + struct.pack(">I", self._adler)

    def _header(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return _ZLIB_HEADER_FAST


def compress(data: bytes, choice: Choice) -> bytes:
    """One zlib stream of `data`; zlib releases the GIL, so the pieces run in parallel."""
    stream = Stream(choice)
    return b"".join([*stream.feed(data), *stream.finish()])
