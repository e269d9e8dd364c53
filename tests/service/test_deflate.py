"""Parallel zlib: the pieces join into one stream that any zlib reader takes."""

from __future__ import annotations

import os
import zlib

import pytest

from service import deflate


@pytest.mark.parametrize("size", [0, 1, 1000, deflate.PIECE_BYTES, deflate.PIECE_BYTES * 3 + 7])
@pytest.mark.parametrize(
    "choice",
    [
        deflate.Choice(deflate.Setting(1)),
        deflate.Choice(deflate.Setting(1, zlib.Z_RLE)),
        deflate.Choice(deflate.Setting(1, zlib.Z_RLE), deflate.Setting(6), below=1.0),
    ],
)
def test_round_trip(size: int, choice: deflate.Choice) -> None:
    data = (os.urandom(size // 2) + bytes(size - size // 2))[:size]
    assert zlib.decompress(deflate.compress(data, choice)) == data


def test_the_same_input_gives_the_same_bytes() -> None:
    data = bytes(range(256)) * 20_000
    choice = deflate.Choice(deflate.Setting(1, zlib.Z_RLE), deflate.Setting(6), below=0.5)
    assert deflate.compress(data, choice) == deflate.compress(data, choice)


def test_pieces_that_compress_well_get_the_second_setting_when_it_is_smaller() -> None:
    # Repeats of a 1000-byte pattern: run-length coding finds no runs, string matching does.
    data = os.urandom(1000) * 5000
    run_length = deflate.Choice(deflate.Setting(1, zlib.Z_RLE))
    chosen = deflate.Choice(deflate.Setting(1, zlib.Z_RLE), deflate.Setting(6), below=1.0)
    assert len(deflate.compress(data, chosen)) < len(deflate.compress(data, run_length)) / 10
    never = deflate.Choice(deflate.Setting(1, zlib.Z_RLE), deflate.Setting(6), below=0.0)
    assert deflate.compress(data, never) == deflate.compress(data, run_length)
