"""service.pngload: Pillow's PNG pixels and errors, with ISA-L inflating in front of its decoder.

Every case is compared with Pillow decoding the same bytes itself (`Image.open(...).load()`).
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image, ImageDraw, PngImagePlugin

from service import imaging, pngload

MAX_PIXELS = 64_000_000


def _png(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **options)
    return out.getvalue()


def _photo(mode: str, size: tuple[int, int] = (700, 500)) -> Image.Image:
    noise = Image.frombytes("L", size, random.Random(size[0]).randbytes(size[0] * size[1]))
    ramp = Image.linear_gradient("L").resize(size)
    rgb = Image.merge("RGB", (ramp, noise, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    ImageDraw.Draw(rgb).text((10, 10), "pngload", fill=(255, 0, 0))
    if mode in ("RGBA", "LA"):
        rgb.putalpha(Image.radial_gradient("L").resize(size))
    return rgb.convert(mode)


def _pillows(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _ours(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert pngload.decodable(image)
    pngload.load(image)
    return image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunks.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def _rebuilt(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(_chunk(kind, data) for kind, data in chunks)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_same_pixels_as_pillow(mode: str, level: int) -> None:
    data = _png(_photo(mode), compress_level=level)
    ours = _ours(data)
    assert ours.mode == mode
    assert ours.tobytes() == _pillows(data).tobytes()


def test_many_small_idat_chunks_and_one_row_per_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces smaller than a row, and a stream split over many IDAT chunks."""
    data = _png(_photo("RGB"))
    chunks = _chunks(data)
    stream = b"".join(body for kind, body in chunks if kind == b"IDAT")
    split = [(b"IDAT", stream[start : start + 777]) for start in range(0, len(stream), 777)]
    head = [chunk for chunk in chunks if chunk[0] not in (b"IDAT", b"IEND")]
    rebuilt = _rebuilt([*head, *split, (b"IEND", b"")])
    monkeypatch.setattr(pngload, "PIECE_BYTES", 1000)
    assert _ours(rebuilt).tobytes() == _pillows(data).tobytes()


def test_text_and_exif_after_the_pixels_are_read_as_pillow_reads_them() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    data = _png(_photo("RGB", (64, 32)))
    chunks = _chunks(data)
    tail = [
        (b"tEXt", b"Comment\x00after the pixels"),
        (b"eXIf", exif.tobytes()),
        (b"IEND", b""),
    ]
    rebuilt = _rebuilt([chunk for chunk in chunks if chunk[0] != b"IEND"] + tail)
    ours, pillows = _ours(rebuilt), _pillows(rebuilt)
    assert ours.info == pillows.info
    assert ours.getexif() == pillows.getexif()
    # And the conversion turns the pixels as the EXIF says, as it does for Pillow's decode.
    converted = Image.open(io.BytesIO(imaging.greyscale(io.BytesIO(rebuilt), MAX_PIXELS).data))
    assert converted.size == (32, 64)


def test_truncated_pixel_data_is_an_error() -> None:
    data = _png(_photo("RGB"))
    chunks = _chunks(data)
    stream = b"".join(body for kind, body in chunks if kind == b"IDAT")
    head = [chunk for chunk in chunks if chunk[0] not in (b"IDAT", b"IEND")]
    short = _rebuilt([*head, (b"IDAT", stream[: len(stream) // 2]), (b"IEND", b"")])
    with pytest.raises(OSError, match="truncated"):
        _pillows(short)
    with pytest.raises(OSError, match="truncated"):
        _ours(short)


def test_a_file_cut_short_is_an_error() -> None:
    data = _png(_photo("RGB"))
    with pytest.raises(OSError, match="truncated"):
        _pillows(data[: len(data) // 2])
    with pytest.raises(OSError, match="truncated"):
        _ours(data[: len(data) // 2])


def test_broken_pixel_data_is_an_error_and_the_conversion_says_so() -> None:
    data = _png(_photo("RGB"))
    chunks = _chunks(data)
    stream = bytearray(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stream[2] = 0b111  # the first block: the last, of the reserved type 3 that no data has
    head = [chunk for chunk in chunks if chunk[0] not in (b"IDAT", b"IEND")]
    broken = _rebuilt([*head, (b"IDAT", bytes(stream)), (b"IEND", b"")])
    with pytest.raises(OSError, match="broken data stream"):
        _pillows(broken)
    with pytest.raises(OSError, match="broken data stream"):
        _ours(broken)
    with pytest.raises(imaging.ImageRejectedError, match="could not be decoded"):
        imaging.greyscale(io.BytesIO(broken), MAX_PIXELS)


def test_rows_beyond_the_last_are_ignored_as_pillow_ignores_them() -> None:
    image = _photo("L", (50, 40))
    data = _png(image)
    chunks = _chunks(data)
    raw = b"".join(b"\x00" + image.tobytes()[y * 50 : (y + 1) * 50] for y in range(40))
    longer = zlib.compress(raw + b"\x00" * 51 * 10)  # ten rows too many
    head = [chunk for chunk in chunks if chunk[0] not in (b"IDAT", b"IEND")]
    rebuilt = _rebuilt([*head, (b"IDAT", longer), (b"IEND", b"")])
    assert _ours(rebuilt).tobytes() == _pillows(rebuilt).tobytes() == image.tobytes()


@pytest.mark.parametrize(
    ("image", "options"),
    [
        pytest.param(_photo("RGB").convert("P"), {}, id="palette"),
        pytest.param(_photo("L").convert("I;16"), {}, id="16-bit"),
        pytest.param(_photo("L").convert("1"), {}, id="1-bit"),
    ],
)
def test_other_kinds_are_left_to_pillow(image: Image.Image, options: dict[str, object]) -> None:
    data = _png(image, **options)
    opened = Image.open(io.BytesIO(data))
    assert not pngload.decodable(opened)
    # The conversion still handles them, through Pillow's own decode.
    imaging.greyscale(io.BytesIO(data), MAX_PIXELS)


def test_an_interlaced_image_is_left_to_pillow() -> None:
    chunks = _chunks(_png(_photo("RGB", (40, 30))))
    kind, header = chunks[0]
    chunks[0] = (kind, header[:12] + b"\x01")  # Adam7 (Pillow writes no interlaced PNGs)
    image = Image.open(io.BytesIO(_rebuilt(chunks)))
    assert image.info.get("interlace") == 1
    assert not pngload.decodable(image)


def test_an_animation_is_left_to_pillow() -> None:
    frames = [_photo("RGB", (40, 30)), _photo("RGB", (40, 30)).rotate(180)]
    data = _png(frames[0], save_all=True, append_images=frames[1:])
    assert not pngload.decodable(Image.open(io.BytesIO(data)))


def test_the_file_position_does_not_matter() -> None:
    data = _png(_photo("RGB", (40, 30)))
    file = io.BytesIO(data)
    image = Image.open(file)
    assert isinstance(image, PngImagePlugin.PngImageFile)
    file.seek(0)
    pngload.load(image)
    assert image.tobytes() == _pillows(data).tobytes()


def test_a_loaded_image_is_not_decoded_again() -> None:
    image = Image.open(io.BytesIO(_png(_photo("RGB", (40, 30)))))
    image.load()
    assert not pngload.decodable(image)


def test_the_conversion_gives_the_same_bytes_with_either_decoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _png(_photo("RGBA"))
    ours = imaging.greyscale(io.BytesIO(data), MAX_PIXELS).data
    monkeypatch.setattr(pngload, "decodable", lambda image: False)
    assert imaging.greyscale(io.BytesIO(data), MAX_PIXELS).data == ours
