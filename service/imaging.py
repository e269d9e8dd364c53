"""Greyscale conversion with Pillow that keeps the format and gives the same bytes every time."""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import IO

from PIL import ExifTags, Image, ImageSequence, PngImagePlugin

from service import deflate, pngwrite, vipsload

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
MAX_FRAMES = 1000
# Downloads up to this size are decoded before they are stored (a few ms); bigger ones get
# checks that find a truncated file without decoding it (bench/greyscale.py measures both).
FULL_CHECK_PIXELS = 2_000_000
# Greyscale PNGs that Pillow writes itself (palettes, 16 bits, a transparent colour, and
# interlaced or turned images) follow service.pngwrite's rule for the whole image: level 1,
# or level 6 where a sample of rows spread over the image comes out 8% smaller with it.
# Animations keep level 1.
PNG_COMPRESS_LEVEL = 1
PNG_THOROUGH_LEVEL = 6
# Pixels in the samples that choose a PNG's level and a lossless WebP's method.
SAMPLE_BYTES = 64 * 1024
# WebP output follows the input's kind, chosen by measurement (bench/greyscale.py). A lossy
# input comes out lossy: quality 75 keeps photos under the input's bytes for inputs of
# quality 75 to 95, and it decodes within 1 of true grey (libwebp's YUV to RGB arithmetic
# turns some grey levels into R = B = G + 1). A lossless input comes out lossless and
# exactly grey, with method 1: method 0 made gradients hundreds of times larger and smooth
# photos 2.4x. On photos, though, method 1 peaked at 32 to 38 bytes per pixel (9 MP) against
# method 0's 20 to 30, for output 1.2x to 2.4x smaller: an image whose sample of rows packs
# to WEBP_NOISY_BYTES_PER_PIXEL or more, as service.pngwrite packs them (photos do; graphics,
# gradients and fractals stay under 0.25), gets method 0.
WEBP_LOSSY = {"quality": 75, "method": 2}
WEBP_LOSSLESS = {"lossless": True, "method": 1, "quality": 50, "exact": True}
WEBP_LOSSLESS_NOISY = {"lossless": True, "method": 0, "quality": 50, "exact": True}
WEBP_NOISY_BYTES_PER_PIXEL = 0.3
# WebPs of more pixels than this are decoded by libvips: 12.8 bytes per pixel at the peak of
# a conversion against 16.4 for Pillow's decode alone (9 MP), but twice Pillow's time (24 ms
# against 10 ms for an 800x600 photo).
WEBP_LIBVIPS_ABOVE_PIXELS = 2_000_000
# Greyscale for each mode that libvips hands out.
GREY_OF = {"L": "L", "LA": "LA", "RGB": "L", "RGBA": "LA"}
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N"})
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageRejectedError(Exception):
    """The bytes are no supported image, are damaged, or exceed the pixel limit; answers 422."""


@dataclass(frozen=True)
class Converted:
    """A greyscale image, encoded."""

    data: bytes
    content_type: str


def check(file: IO[bytes], max_pixels: int) -> str:
    """The content type of a supported, whole image within the pixel limit.

    What the conversion could not decode is refused here, before it is stored. Small images
    are decoded in full; bigger ones get cheaper checks that still find a truncated file
    (bench/greyscale.py measures both).
    """
    with opened(file, max_pixels) as image:
        return check_of(image, file, max_pixels)


def check_of(image: Image.Image, file: IO[bytes], max_pixels: int) -> str:
    """check() of an image that opened() gave for `file`; the caller closes it."""
    fmt = format_of(image)
    try:
        _check_whole(image, fmt, file, max_pixels)
    # As in greyscale(): every way a decoder fails means the image cannot be converted.
    except Exception as error:
        raise ImageRejectedError(f"The image could not be decoded: {_reason(error)}") from None
    return CONTENT_TYPES[fmt]


def _check_whole(image: Image.Image, fmt: str, file: IO[bytes], max_pixels: int) -> None:
    width, height = image.size
    if fmt == "GIF":
        # Frames as far as the conversion's limits, which refuse what lies beyond them.
        for number, frame in enumerate(ImageSequence.Iterator(image)):
            if number >= MAX_FRAMES or (number + 1) * width * height > max_pixels:
                break
            frame.load()
    elif fmt == "JPEG" and width * height <= FULL_CHECK_PIXELS:
        # Scaled by 1/8 in the decoder, which still reads every block of every scan.
        image.draft(None, (max(1, width // 8), max(1, height // 8)))
        image.load()
    elif width * height <= FULL_CHECK_PIXELS:
        # The decoder that the conversion will use.
        if _streamed_png(image) or (fmt == "WEBP" and _webp_by_libvips(image)):
            for _ in vipsload.Decoded(file, fmt).strips():
                pass
        else:
            image.load()
    elif fmt == "JPEG":
        tiles = getattr(image, "tile", None)
        _check_jpeg_end(file, tiles[0][2] if tiles else 0)
    elif fmt == "PNG":
        image.verify()  # every chunk's checksum, up to IEND; no decompression
    # A WebP file's chunks were all read, and checked, when it was opened.


def _check_jpeg_end(file: IO[bytes], scan: int) -> None:
    """An end-of-image marker after the first scan's data: coded data never holds one."""
    file.seek(scan)
    previous = b""
    while chunk := file.read(1024 * 1024):
        if b"\xff\xd9" in previous[-1:] + chunk:
            return
        previous = chunk
    raise ValueError("image file is truncated (no end-of-image marker)")


def greyscale(file: IO[bytes], max_pixels: int) -> Converted:
    """`file` converted to greyscale in its own format, without metadata."""
    with opened(file, max_pixels) as image:
        return greyscale_of(image, file, max_pixels)


def greyscale_of(image: Image.Image, file: IO[bytes], max_pixels: int) -> Converted:
    """greyscale() of an image that opened() gave for `file`; the caller closes it."""
    fmt = format_of(image)
    try:
        frames = 1 if fmt == "JPEG" else getattr(image, "n_frames", 1)
        if frames > 1:
            data = _animation(image, fmt, frames, max_pixels, file)
        else:
            data = _still(image, fmt, file)
    # Decoders of untrusted bytes fail in many ways (OSError, SyntaxError, struct.error,
    # IndexError, …); every one of them means this image cannot be converted.
    except Exception as error:
        if isinstance(error, ImageRejectedError):
            raise
        raise ImageRejectedError(f"The image could not be decoded: {_reason(error)}") from None
    return Converted(data=data, content_type=CONTENT_TYPES[fmt])


def opened(file: IO[bytes], max_pixels: int) -> Image.Image:
    """`file` as an image, its header read; ImageRejectedError for no image or too many pixels."""
    file.seek(0)
    try:
        image = Image.open(file, formats=tuple(CONTENT_TYPES))
    except Image.DecompressionBombError:
        raise ImageRejectedError(
            f"The image has more than MAX_IMAGE_PIXELS={max_pixels} pixels."
        ) from None
    except Exception:
        raise ImageRejectedError(
            "The content is not a supported image (JPEG, PNG, GIF or WebP)."
        ) from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageRejectedError(
            f"The image has {width}x{height} pixels, more than MAX_IMAGE_PIXELS={max_pixels}."
        )
    return image


def format_of(image: Image.Image) -> str:
    # A JPEG with extra pictures (MPO, from some cameras) is still a JPEG; the first one counts.
    return "JPEG" if image.format == "MPO" else str(image.format)


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


def _streamed_png(image: Image.Image) -> bool:
    """Whether `image` is a PNG that libvips decodes and service.pngwrite writes, in strips.

    Those are the plain ones: 8 bits per sample, grey or RGB with or without alpha, no
    transparent colour, one frame, not interlaced, and not turned by an EXIF orientation.
    Pillow decodes and writes every other kind whole (palettes stay palettes).
    """
    if not isinstance(image, PngImagePlugin.PngImageFile) or len(image.tile) != 1:
        return False
    tile = image.tile[0]
    return (
        tile.codec_name == "zip"
        and tile.args == image.mode  # 8 bits per sample: Pillow's raw mode is the mode
        and image.mode in GREY_OF
        and "transparency" not in image.info
        and not image.info.get("interlace")
        and not getattr(image, "is_animated", False)
        and _orientation(image) not in _TRANSPOSE
    )


def _orientation(image: Image.Image) -> int:
    # A PNG's EXIF is read here only when it comes before the pixels: Pillow's getexif()
    # would decode the whole image to look for one after them.
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return int(image.getexif().get(ExifTags.Base.Orientation, 1))


def _still(image: Image.Image, fmt: str, file: IO[bytes]) -> bytes:
    if fmt == "PNG" and _streamed_png(image):
        decoded = vipsload.Decoded(file, fmt)
        grey_mode = GREY_OF[decoded.mode]
        strips = (strip.convert(grey_mode) for strip in decoded.strips())
        return pngwrite.write(decoded.width, decoded.height, grey_mode, strips)
    if fmt == "PNG":
        image.load()  # before getexif(), which would have Pillow decode it
    options = _options(image, fmt, file)
    orientation = _orientation(image)
    if fmt == "WEBP":
        return _webp_still(image, file, orientation, options)
    if fmt == "JPEG" and image.mode == "RGB":
        # Decode straight to luma at full size: libjpeg then skips the chroma work.
        image.draft("L", image.size)
    grey = _grey(image)
    # The EXIF that held the orientation is dropped, so the pixels must carry it.
    if orientation in _TRANSPOSE:
        grey = grey.transpose(_TRANSPOSE[orientation])
    if fmt == "PNG":
        return _png_by_pillow(grey, options)
    return _encoded(grey, fmt, options)


def _webp_still(
    image: Image.Image, file: IO[bytes], orientation: int, options: dict[str, object]
) -> bytes:
    """A WebP in greyscale, encoded by Pillow's libwebp.

    Big ones are decoded by libvips, in about half of Pillow's memory; small ones by Pillow,
    which takes half of libvips's time (WEBP_LIBVIPS_ABOVE_PIXELS). Pillow would convert the grey
    image to RGB(A) for libwebp itself, and keep both; here the grey one is gone before the
    encoder starts. Pillow's WebP encoder hands back its output whole and releases the GIL
    by itself, so it needs no file descriptor.
    """
    if not _webp_by_libvips(image):
        grey = _grey(image)
    else:
        # Pillow's WebP reader holds a copy of the whole file from the moment it opens it;
        # from here on only libvips reads the file, so that copy goes now.
        vars(image).pop("_decoder", None)
        grey = _decoded_grey(file)
    if orientation in _TRANSPOSE:
        grey = grey.transpose(_TRANSPOSE[orientation])
    if options.get("lossless") and _packed_bytes_per_pixel(grey) >= WEBP_NOISY_BYTES_PER_PIXEL:
        options = {**options, **WEBP_LOSSLESS_NOISY}
    rgb = grey.convert("RGBA" if grey.mode == "LA" else "RGB")
    del grey
    out = io.BytesIO()
    rgb.save(out, "WEBP", **options)
    return out.getvalue()


def _packed_bytes_per_pixel(grey: Image.Image) -> float:
    """Bytes per pixel of a sample of rows spread over `grey` (L or LA), as service.pngwrite
    packs them: how noisy the image is."""
    sample = _sample_rows(grey)
    row_bytes = sample.width * len(sample.getbands())
    filtered, _ = pngwrite.up_filtered(sample, bytes(row_bytes))
    packed = deflate.compress(filtered, deflate.Choice(pngwrite.DEFLATE.first))
    return len(packed) / (sample.width * sample.height)


def _webp_by_libvips(image: Image.Image) -> bool:
    return image.width * image.height > WEBP_LIBVIPS_ABOVE_PIXELS


def _decoded_grey(file: IO[bytes]) -> Image.Image:
    """A WebP decoded by libvips, in greyscale (L, or LA with alpha), strip by strip.

    Pillow's WebP decoder holds three copies of the image in RGBA at its peak.
    """
    decoded = vipsload.Decoded(file, "WEBP")
    grey_mode = GREY_OF[decoded.mode]
    grey = Image.new(grey_mode, (decoded.width, decoded.height))
    top = 0
    for strip in decoded.strips():
        grey.paste(strip.convert(grey_mode), (0, top))
        top += strip.height
    return grey


def _encoded(image: Image.Image, fmt: str, options: dict[str, object]) -> bytes:
    """`image` saved by Pillow's encoder for `fmt`, without holding the GIL while it encodes.

    Pillow lets other threads run during an encode only when it writes to a file descriptor;
    into a BytesIO, a JPEG's encode stops the worker's requests for its whole length. A
    file in memory (memfd) has a descriptor and never touches a disk.
    """
    with _memory_file() as out:
        image.save(out, fmt, **options)
        out.seek(0)
        return out.read()


def _memory_file() -> IO[bytes]:
    try:
        descriptor = os.memfd_create("greyscale", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # no memfd (not Linux): the same bytes, GIL held
        return io.BytesIO()
    return os.fdopen(descriptor, "w+b", buffering=0)


def _png_by_pillow(grey: Image.Image, options: dict[str, object]) -> bytes:
    """Pillow's PNG encoder at the level that a sample chooses, as service.deflate does."""
    sample = _sample_rows(grey)
    thorough_options = {**options, "compress_level": PNG_THOROUGH_LEVEL}
    fast = len(_encoded(sample, "PNG", options))
    thorough = len(_encoded(sample, "PNG", thorough_options))
    better = thorough <= pngwrite.DEFLATE.better * fast
    return _encoded(grey, "PNG", thorough_options if better else options)


def _sample_rows(image: Image.Image) -> Image.Image:
    """Eight bands of rows spread over `image`, about SAMPLE_BYTES pixels in all."""
    width, height = image.size
    band = max(1, SAMPLE_BYTES // 8 // max(1, width))
    tops = sorted({number * height // 8 for number in range(8)})
    sample = Image.new(image.mode, (width, band * len(tops)))
    if image.mode == "P":
        sample.putpalette(image.getpalette() or [])
    for number, top in enumerate(tops):
        sample.paste(image.crop((0, top, width, min(height, top + band))), (0, number * band))
    return sample


def _options(image: Image.Image, fmt: str, file: IO[bytes]) -> dict[str, object]:
    """Fixed encoder settings, so that the same input always gives the same bytes."""
    if fmt == "JPEG":
        qtables = getattr(image, "quantization", None)
        # The input's own quantisation: no further loss of quality, and no growth in size.
        return {"qtables": qtables, "optimize": False} if qtables else {"quality": 90}
    if fmt == "WEBP":
        return _webp_options(file)
    options = _transparency(image)
    if fmt == "PNG":
        options["compress_level"] = PNG_COMPRESS_LEVEL
    return options


def _grey(image: Image.Image) -> Image.Image:
    """One frame in greyscale, without metadata; palettes stay palettes, 16-bit stays 16-bit."""
    image.load()
    if image.mode == "P":
        rgb = bytes(image.getpalette("RGB") or [])
        levels = Image.frombytes("RGB", (len(rgb) // 3, 1), rgb).convert("L").tobytes()
        image.putpalette(bytes(level for level in levels for _ in range(3)), "RGB")
        grey = image
    elif image.mode in _GREY_MODES:
        grey = image
    elif "A" in image.mode or "a" in image.mode:
        grey = image.convert("RGBA").convert("LA")
    else:
        grey = image.convert("L")
    grey.info = {}
    return grey


def _transparency(image: Image.Image) -> dict[str, object]:
    value = image.info.get("transparency")
    if value is None:
        return {}
    if image.mode == "RGB" and isinstance(value, tuple):
        probe = Image.new("RGB", (1, 1), value)
        return {"transparency": probe.convert("L").getpixel((0, 0))}
    return {"transparency": value}


def _animation(
    image: Image.Image, fmt: str, frames: int, max_pixels: int, file: IO[bytes]
) -> bytes:
    width, height = image.size
    if frames > MAX_FRAMES or frames * width * height > max_pixels:
        raise ImageRejectedError(
            f"The animation has {frames} frames of {width}x{height}, over the limits "
            f"({MAX_FRAMES} frames, MAX_IMAGE_PIXELS={max_pixels} pixels in all)."
        )
    greys: list[Image.Image] = []
    durations: list[int] = []
    for frame in ImageSequence.Iterator(image):
        luma, alpha = frame.convert("RGBA").convert("LA").split()
        # GIF keeps transparency only from RGBA frames, so the grey goes into all three channels.
        greys.append(Image.merge("RGBA", (luma, luma, luma, alpha)))
        durations.append(int(frame.info.get("duration", 0)))
    options: dict[str, object] = {
        "save_all": True,
        "append_images": greys[1:],
        "duration": durations,
        "loop": int(image.info.get("loop", 0)),
    }
    if fmt == "WEBP":
        options.update(_webp_options(file))
    if fmt == "PNG":
        options["compress_level"] = PNG_COMPRESS_LEVEL
    return _encoded(greys[0], fmt, options)


def _webp_options(file: IO[bytes]) -> dict[str, object]:
    return dict(WEBP_LOSSLESS if is_lossless_webp(file) else WEBP_LOSSY)


def is_lossless_webp(file: IO[bytes]) -> bool:
    """Whether the first image data chunk of a RIFF WebP file is VP8L (lossless)."""
    position = file.tell()
    try:
        file.seek(12)
        while len(header := file.read(8)) == 8:
            fourcc, size = header[:4], struct.unpack("<I", header[4:])[0]
            if fourcc in (b"VP8L", b"VP8 "):
                return fourcc == b"VP8L"
            # An animation frame starts with 16 bytes of placement, then its own image chunks.
            file.seek(16 if fourcc == b"ANMF" else size + (size & 1), io.SEEK_CUR)
        return False
    finally:
        file.seek(position)
