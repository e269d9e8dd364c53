"""Parallel zlib: the pieces join into one stream that any zlib reader takes, the same bytes
for the same input, each piece compressed once with the setting its sample chooses."""

from __future__ import annotations

import hashlib
import os
import random
import zlib

import pytest

from service import deflate

SAMPLED = deflate.Choice(deflate.Setting(1, zlib.Z_RLE), deflate.Setting(6), better=0.92)


@pytest.mark.parametrize("size", [0, 1, 1000, deflate.PIECE_BYTES, deflate.PIECE_BYTES * 3 + 7])
@pytest.mark.parametrize(
    "choice",
    [deflate.Choice(deflate.Setting(1)), deflate.Choice(deflate.Setting(1, zlib.Z_RLE)), SAMPLED],
)
def test_round_trip(size: int, choice: deflate.Choice) -> None:
    data = (os.urandom(size // 2) + bytes(size - size // 2))[:size]
    assert zlib.decompress(deflate.compress(data, choice)) == data


def test_a_stream_fed_in_any_steps_gives_the_same_bytes() -> None:
    data = os.urandom(deflate.PIECE_BYTES) + bytes(deflate.PIECE_BYTES * 2 + 99)
    whole = deflate.compress(data, SAMPLED)
    stream = deflate.Stream(SAMPLED)
    out: list[bytes] = []
    for start in range(0, len(data), 12_345):
        out += stream.feed(data[start : start + 12_345])
    out += stream.finish()
    assert b"".join(out) == whole


def test_pieces_that_string_matching_packs_get_the_second_setting() -> None:
    # Repeats of a 1000-byte pattern: run-length coding finds no runs, string matching does.
    data = os.urandom(1000) * 5000
    run_length = deflate.Choice(deflate.Setting(1, zlib.Z_RLE))
    assert len(deflate.compress(data, SAMPLED)) < len(deflate.compress(data, run_length)) / 10
    never = deflate.Choice(deflate.Setting(1, zlib.Z_RLE), deflate.Setting(6), better=0.0)
    assert deflate.compress(data, never) == deflate.compress(data, run_length)


def test_the_bytes_are_those_every_node_makes() -> None:
    """A fixed input, a fixed digest: zlib has no code chosen by the processor at run time,
    so a node whose CPU, zlib build or piece rule differs shows here as another digest."""
    rng = random.Random(21)
    noisy = bytes(rng.randrange(256) for _ in range(300_000))
    data = noisy + bytes(range(256)) * 12_000 + noisy[::-1]
    digest = hashlib.sha256(deflate.compress(data, SAMPLED)).hexdigest()
    assert digest == GOLDEN, digest


# Made with zlib 1.2.13 (Debian bookworm's, as in the container image). A new zlib version may
# change it: that changes the names of new PNG results, and is a choice to make knowingly.
GOLDEN = "a8ecca1ebe2ee5966ccc29393dc226052cbc0594ccd32f293e2ec90a76bd2e1c"
