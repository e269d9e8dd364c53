"""Greyscale output: true grey, the same bytes every time, and PNGs about as small as Pillow's."""

from __future__ import annotations

import hashlib
import io
import random

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter

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


def _screenshot(width: int = 640, height: int = 400, spacing: int = 20) -> Image.Image:
    image = Image.new("RGB", (width, height), (246, 246, 246))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 32), fill=(40, 60, 120))
    for y in range(48, height - 20, spacing):
        draw.text((16, y), "lorem ipsum dolor sit amet, greyscale images " * 2, fill=(20, 20, 20))
    return image


def _photo(width: int, height: int) -> Image.Image:
    """Smooth colour, some noise: what a camera gives, within what a test can afford."""
    ramp = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 12).filter(ImageFilter.GaussianBlur(1))
    radial = Image.radial_gradient("L").resize((width, height))
    return Image.merge("RGB", (ramp, Image.blend(radial, noise, 0.3), noise))


def _largest(band: Image.Image) -> int:
    extrema = band.getextrema()
    assert isinstance(extrema[1], int)
    return extrema[1]


def _webp_kind(data: bytes) -> str:
    """VP8 (lossy) or VP8L (lossless): the fourcc of the file's image data chunk."""
    position = 12
    while position + 8 <= len(data):
        fourcc = data[position : position + 4]
        if fourcc in (b"VP8 ", b"VP8L"):
            return fourcc.decode().strip()
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        position += 8 + size + (size & 1)
    raise AssertionError("no image data chunk")


@pytest.fixture(params=["Pillow", "libvips"])
def webp_decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Small WebPs are decoded by Pillow, big ones by libvips: each test runs with both."""
    if request.param == "libvips":
        monkeypatch.setattr(imaging, "WEBP_LIBVIPS_ABOVE_PIXELS", 0)
    return str(request.param)


def test_lossy_webp_comes_out_lossy_and_grey_within_one(webp_decoder: str) -> None:
    """libwebp's YUV to RGB arithmetic decodes some grey levels as R = B = G + 1."""
    data = _encode(_every_level(), "WEBP", quality=80)
    out = imaging.greyscale(io.BytesIO(data), MAX_PIXELS).data
    assert _webp_kind(out) == "VP8"
    red, green, blue = Image.open(io.BytesIO(out)).convert("RGB").split()
    for one, other in ((red, green), (green, blue), (red, blue)):
        assert _largest(ImageChops.difference(one, other)) <= 1


def test_lossless_webp_comes_out_lossless_and_exactly_grey(webp_decoder: str) -> None:
    image = _every_level()
    out = imaging.greyscale(io.BytesIO(_encode(image, "WEBP", lossless=True)), MAX_PIXELS).data
    assert _webp_kind(out) == "VP8L"
    decoded = Image.open(io.BytesIO(out))
    red, green, blue = decoded.convert("RGB").split()
    assert red.tobytes() == green.tobytes() == blue.tobytes()
    assert green.tobytes() == image.convert("L").tobytes()  # no level lost


@pytest.mark.parametrize("quality", [75, 90])
def test_a_lossy_webp_photo_is_no_larger_than_the_input(quality: int, webp_decoder: str) -> None:
    data = _encode(_photo(1200, 900), "WEBP", quality=quality)
    assert len(imaging.greyscale(io.BytesIO(data), MAX_PIXELS).data) <= 1.1 * len(data)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_an_animation_keeps_every_frame_and_its_timing(fmt: str) -> None:
    frames = [_photo(96, 64).rotate(angle) for angle in (0, 45, 90, 135)]
    durations = [40, 80, 120, 160]
    data = _encode(
        frames[0], fmt, save_all=True, append_images=frames[1:], duration=durations, loop=3
    )
    out = Image.open(io.BytesIO(imaging.greyscale(io.BytesIO(data), MAX_PIXELS).data))
    assert getattr(out, "n_frames", 1) == len(frames)
    seen = []
    for number in range(len(frames)):
        out.seek(number)
        red, green, blue = out.convert("RGB").split()
        seen.append(out.info["duration"])
        # A lossy input stays lossy: grey within 1, as for a still image.
        assert _largest(ImageChops.difference(red, green)) <= (fmt == "WEBP")
        assert _largest(ImageChops.difference(blue, green)) <= (fmt == "WEBP")
    assert seen == durations
    assert out.info["loop"] == 3


def test_an_animation_over_the_frame_limit_is_refused_with_one_line() -> None:
    count = imaging.MAX_FRAMES + 1
    frames = [Image.new("RGB", (8, 8), (number % 256, number // 256, 0)) for number in range(count)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)
    with pytest.raises(imaging.ImageRejectedError, match="frames") as refused:
        imaging.greyscale(io.BytesIO(data), MAX_PIXELS)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(Image.linear_gradient("L").convert("RGB"), id="gradient"),
        pytest.param(Image.radial_gradient("L").resize((800, 600)).convert("RGB"), id="radial"),
        pytest.param(_screenshot(), id="screenshot"),
        # Its text lines repeat every 66,022 bytes of filtered rows, the sample's stride within
        # a piece give or take 1%: every run of the sample falls between two lines of text.
        pytest.param(_screenshot(3000, 2000, spacing=22), id="screenshot-lines-between-samples"),
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


def test_both_webp_decoders_give_the_same_grey(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(_photo(320, 240), "WEBP", lossless=True)
    by_pillow = imaging.greyscale(io.BytesIO(data), MAX_PIXELS).data
    monkeypatch.setattr(imaging, "WEBP_LIBVIPS_ABOVE_PIXELS", 0)
    assert imaging.greyscale(io.BytesIO(data), MAX_PIXELS).data == by_pillow


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("side", [600, 2000])  # decoded below FULL_CHECK_PIXELS, checked above
def test_check_refuses_a_truncated_file(fmt: str, side: int) -> None:
    image = Image.effect_noise((side, side), 40).convert("RGB")
    data = _encode(image, fmt, **({"progressive": True} if fmt == "JPEG" else {}))
    assert (side * side > imaging.FULL_CHECK_PIXELS) == (side == 2000)
    assert imaging.check(io.BytesIO(data), MAX_PIXELS) == f"image/{fmt.lower()}"
    # A WebP's container states its length: Pillow refuses a short one as it opens it.
    refused = "not a supported image" if fmt == "WEBP" else "could not be decoded"
    with pytest.raises(imaging.ImageRejectedError, match=refused):
        imaging.check(io.BytesIO(data[: len(data) - 100]), MAX_PIXELS)
    with pytest.raises(imaging.ImageRejectedError, match=refused):
        imaging.greyscale(io.BytesIO(data[: len(data) - 100]), MAX_PIXELS)


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


def test_a_png_converts_to_the_bytes_every_node_makes() -> None:
    """Decoded by libvips, made grey by Pillow, filtered and compressed by service.pngwrite
    with the system zlib: a fixed image, a fixed digest (made with zlib 1.2.13, as in the
    container image). Over one deflate piece, with flat, smooth and busy parts, all made
    with integer arithmetic and a seeded generator, so that the input is the same anywhere."""
    image = _fixed_picture(1400)
    data = imaging.greyscale(io.BytesIO(_encode(image, "PNG", compress_level=1)), MAX_PIXELS).data
    assert image.width * image.height > deflate.PIECE_BYTES
    assert hashlib.sha256(data).hexdigest() == GOLDEN_PNG


def _fixed_picture(side: int) -> Image.Image:
    ramp = Image.linear_gradient("L").resize((side, side), Image.Resampling.NEAREST)
    busy = random.Random(21).randbytes(side * (side // 4) * 3)
    image = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_90), ramp))
    image.paste(Image.frombytes("RGB", (side, side // 4), busy), (0, side // 2))
    ImageDraw.Draw(image).rectangle((100, 100, 700, 300), fill=(20, 200, 90))
    return image


GOLDEN_PNG = "527a173b61ce4685b4632bb6ebbdd9046368e7d7c3a107a28d814f40605a5bfe"
