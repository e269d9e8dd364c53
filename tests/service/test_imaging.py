"""Greyscale output: true grey, the same bytes every time, and PNGs about as small as Pillow's."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from service import deflate, imaging

MAX_PIXELS = 64_000_000


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _every_level() -> Image.Image:
    """Every grey level, in bands, with a little colour so the conversion has work to do."""
    grey = Image.linear_gradient("L").resize((256, 256))
    return Image.merge("RGB", (grey, grey, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def _screenshot() -> Image.Image:
    image = Image.new("RGB", (640, 400), (246, 246, 246))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 640, 32), fill=(40, 60, 120))
    for y in range(48, 380, 20):
        draw.text((16, y), "lorem ipsum dolor sit amet, greyscale images " * 2, fill=(20, 20, 20))
    return image


def _convert(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(imaging.greyscale(io.BytesIO(data), MAX_PIXELS).data))


@pytest.mark.parametrize("lossless", [False, True])
def test_webp_decodes_as_true_grey(lossless: bool) -> None:
    """Lossy WebP decoded R = B = G + 1 at some levels (81, 82, 166, 251) through libwebp."""
    grey = _convert(_encode(_every_level(), "WEBP", lossless=lossless, quality=80))
    red, green, blue = grey.convert("RGB").split()
    assert red.tobytes() == green.tobytes() == blue.tobytes()


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(Image.linear_gradient("L").convert("RGB"), id="gradient"),
        pytest.param(Image.radial_gradient("L").resize((800, 600)).convert("RGB"), id="radial"),
        pytest.param(_screenshot(), id="screenshot"),
    ],
)
def test_png_is_at_most_15_percent_over_pillows_default(image: Image.Image) -> None:
    ours = imaging.greyscale(io.BytesIO(_encode(image, "PNG")), MAX_PIXELS).data
    pillows = _encode(image.convert("L"), "PNG")
    assert len(ours) <= 1.15 * len(pillows)
    assert Image.open(io.BytesIO(ours)).tobytes() == image.convert("L").tobytes()


def test_output_is_the_same_bytes_every_time() -> None:
    # Over one deflate piece, so that the pieces and their settings are chosen per piece.
    side = 1600
    noisy = Image.effect_noise((side, side), 40).convert("RGB")
    flat = Image.new("RGB", (side, side), (10, 200, 30))
    both = Image.new("RGB", (side, 2 * side))
    both.paste(noisy, (0, 0))
    both.paste(flat, (0, side))
    assert side * 2 * side > 2 * deflate.PIECE_BYTES
    for data in (_encode(both, "PNG"), _encode(_every_level(), "WEBP")):
        first = imaging.greyscale(io.BytesIO(data), MAX_PIXELS).data
        assert imaging.greyscale(io.BytesIO(data), MAX_PIXELS).data == first


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("side", [600, 2000])  # decoded below FULL_CHECK_PIXELS, checked above
def test_check_refuses_a_truncated_file(fmt: str, side: int) -> None:
    image = Image.effect_noise((side, side), 40).convert("RGB")
    data = _encode(image, fmt, **({"progressive": True} if fmt == "JPEG" else {}))
    assert (side * side > imaging.FULL_CHECK_PIXELS) == (side == 2000)
    assert imaging.check(io.BytesIO(data), MAX_PIXELS) == f"image/{fmt.lower()}"
    with pytest.raises(imaging.ImageRejectedError, match="could not be decoded"):
        imaging.check(io.BytesIO(data[: len(data) - 100]), MAX_PIXELS)


def test_check_takes_a_jpeg_with_bytes_after_its_end() -> None:
    """Cameras append data after the picture; the conversion reads the picture alone."""
    data = _encode(Image.effect_noise((2000, 1200), 40).convert("RGB"), "JPEG")
    padded = data + b"\x00" * 4096
    assert imaging.check(io.BytesIO(padded), MAX_PIXELS) == "image/jpeg"
    assert imaging.greyscale(io.BytesIO(padded), MAX_PIXELS).content_type == "image/jpeg"


@pytest.mark.parametrize("mode", ["P", "RGBA"])
def test_png_pillow_writes_is_at_most_15_percent_over_its_default(mode: str) -> None:
    """Palette and alpha PNGs are written by Pillow's encoder; graphics get its level 6 too."""
    image = _screenshot().convert(mode)
    ours = imaging.greyscale(io.BytesIO(_encode(image, "PNG")), MAX_PIXELS).data
    grey = Image.open(io.BytesIO(ours))
    assert grey.mode == {"P": "P", "RGBA": "LA"}[mode]
    assert len(ours) <= 1.15 * len(_encode(grey, "PNG"))
