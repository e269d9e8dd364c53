"""PNG and WebP pixels decoded by libvips, handed out a strip of rows at a time as Pillow images.

libvips decodes a PNG as its rows are asked for, so a conversion holds a few strips of it
rather than the whole image in RGB (Pillow holds 4 bytes per pixel); a WebP it decodes in
one go, in about half of Pillow's memory. Each strip is a Pillow image, so greyscale is
computed by Pillow as for every other format: the same grey levels whatever decodes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import pyvips
from PIL import Image

# Operations are not cached: a cached decode would keep its pixels after the conversion.
pyvips.cache_set_max(0)
pyvips.cache_set_max_mem(0)
pyvips.cache_set_max_files(0)
# One thread per conversion: the pod runs several conversions at once, each on its own
# thread (service.offload), and the memory budget counts one decode per conversion.
pyvips.concurrency_set(1)
# Loaders that libvips marks as unsafe for untrusted input are never run; this module calls
# the PNG and WebP loaders by name, so no other loader is picked by sniffing either.
pyvips.block_untrusted_set(True)

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
# Rows per strip: about this many bytes of decoded pixels at a time.
STRIP_BYTES = 256 * 1024


class VipsDecodeError(OSError):
    """libvips could not decode the image; the message is its first line."""


class _Source:
    """`file` as a libvips source, read from where it starts; nothing is copied up front.

    It remembers whether libvips read to the end: libvips's errors for a file that stops
    early do not say so ("libpng read error"), so that a decode error after the end is
    reported as a truncated file, as Pillow reports it.
    """

    def __init__(self, file: IO[bytes]) -> None:
        file.seek(0)
        self._file = file
        self.ended = False
        self.source = pyvips.SourceCustom()
        self.source.on_read(self._read)
        self.source.on_seek(file.seek)

    def _read(self, size: int) -> bytes:
        try:
            data = self._file.read(size)
        except ValueError:
            # The request that opened the file gave up at its deadline and closed it; the
            # conversion, on its own thread, ends here with a decode error no one reads.
            data = b""
        self.ended = self.ended or not data
        return data

    def error(self, error: pyvips.Error) -> VipsDecodeError:
        reason = _first_line(error)
        if self.ended:
            return VipsDecodeError(f"image file is truncated ({reason})")
        return VipsDecodeError(reason)


def _opened(source: _Source, fmt: str) -> pyvips.Image:
    loader = {"PNG": pyvips.Image.pngload_source, "WEBP": pyvips.Image.webpload_source}[fmt]
    try:
        # "truncated": a file that ends early is an error, not a grey bottom.
        image = loader(source.source, access="sequential", fail_on="truncated")
    except pyvips.Error as error:
        raise source.error(error) from None
    if image.format != "uchar" or image.bands not in MODES:
        raise VipsDecodeError(f"unexpected pixels: {image.bands} bands of {image.format}")
    return image


class Decoded:
    """An image that libvips opened (its header read): its size, Pillow mode and strips."""

    def __init__(self, file: IO[bytes], fmt: str) -> None:
        # libvips calls back into the source while it decodes: it must live as long.
        self._source = _Source(file)
        self._image = _opened(self._source, fmt)
        self.width: int = self._image.width
        self.height: int = self._image.height
        self.mode = MODES[self._image.bands]

    def strips(self) -> Iterator[Image.Image]:
        """The pixels, top to bottom, a strip of rows at a time; each row is decoded once."""
        image, width = self._image, self.width
        step = max(1, STRIP_BYTES // (width * image.bands))
        region = pyvips.Region.new(image)
        for top in range(0, self.height, step):
            rows = min(step, self.height - top)
            try:
                pixels = region.fetch(0, top, width, rows)
            except pyvips.Error as error:
                raise self._source.error(error) from None
            yield Image.frombytes(self.mode, (width, rows), pixels)


def _first_line(error: pyvips.Error) -> str:
    detail = (error.detail or "").strip().splitlines()
    return (detail[0] if detail else str(error.message)).strip() or "libvips error"
