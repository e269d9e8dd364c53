"""Parallel zlib: the pieces join into one stream that any zlib reader takes."""

from __future__ import annotations

import os
import zlib

import pytest

from service import deflate


@pytest.mark.parametrize("size", [0, 1, 1000, deflate.PIECE_BYTES, deflate.PIECE_BYTES * 3 + 7])
@pytest.mark.parametrize("strategy", [zlib.Z_DEFAULT_STRATEGY, zlib.Z_RLE])
def test_round_trip(size: int, strategy: int) -> None:
    data = (os.urandom(size // 2) + bytes(size - size // 2))[:size]
    assert zlib.decompress(deflate.compress(data, 1, strategy)) == data


def test_the_same_input_gives_the_same_bytes() -> None:
    data = bytes(range(256)) * 20_000
    assert deflate.compress(data, 1) == deflate.compress(data, 1)
