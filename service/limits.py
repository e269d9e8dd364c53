"""What a pod can convert: the memory each kind of image takes, and the largest of each kind
that a pod's settings let through, with the limit that binds first.

Pure and light (no imaging libraries), so that the Pulumi program states the same limits
as the running API: a stack output, and a warning at preview.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from service.settings import FetchSettings, ServingSettings, conversion_budget, env_name

MIB = 1024 * 1024
# Peak growth of resident memory per pixel during imaging.greyscale, by kind of image, with a
# margin: measured by `bench/serving.py --per-pixel` on 9 and 24 MP images of random pixels,
# the worst case for every encoder (the largest figures: PNG 3.1 with alpha, JPEG 1.6, GIF
# 2.4, lossy WebP 12.6, lossless WebP 30.3 at 9 MP and 28.6 at 24 MP, of which libvips's
# copy of the file, 3 bytes per pixel there, is the file's size that the cost adds apart).
# Animations (frames counted in the pixels) are converted whole by Pillow: GIF 7.9, lossy
# WebP 10.1, lossless WebP 14.0.
BYTES_PER_PIXEL = {
    "JPEG": 2,
    "PNG": 4,
    "GIF": 3,
    "WEBP": 16,
    "WEBP lossless": 30,
    "animation": 16,
}
# A photo's encoded bytes per pixel in each kind, for the limits a stack states: what the
# download limit lets in, and what the file itself adds to a conversion's cost. Measured on
# the 12 MP photo bench/greyscale.py makes and on camera photos, saved with Pillow's defaults
# (JPEG at quality 90): PNG 1.6 to 1.9, JPEG 0.26 to 0.32, GIF 0.44 to 1.3, lossy WebP 0.12
# to 0.17, lossless WebP 0.97 to 1.6.
PHOTO_FILE_BYTES_PER_PIXEL = {
    "JPEG": 0.3,
    "PNG": 1.7,
    "GIF": 0.8,
    "WEBP": 0.17,
    "WEBP lossless": 1.3,
}
# The limits each one names, in the order a tie is reported.
PIXEL_LIMIT = env_name(FetchSettings, "max_image_pixels")
DOWNLOAD_LIMIT = env_name(FetchSettings, "max_download_bytes")
MEMORY_LIMIT = env_name(ServingSettings, "memory_limit_bytes")
# How people name each kind of PHOTO_FILE_BYTES_PER_PIXEL.
KIND_NAMES = {
    "JPEG": "JPEG",
    "PNG": "PNG",
    "GIF": "GIF",
    "WEBP": "lossy WebP",
    "WEBP lossless": "lossless WebP",
}
# A phone's photo: a stack that cannot convert one of some kind says so at preview.
EVERYDAY_PIXELS = 12_000_000


@dataclass(frozen=True)
class Largest:
    """The largest photo-like image of one kind that a pod converts, and what stops it."""

    kind: str
    pixels: int
    binding: str  # PIXEL_LIMIT, DOWNLOAD_LIMIT or MEMORY_LIMIT

    @property
    def name(self) -> str:
        """The kind as people name it: lossy WebP rather than WEBP."""
        return KIND_NAMES[self.kind]

    @property
    def megapixels(self) -> str:
        return f"{self.pixels / 1e6:.1f} MP"


def largest_images(
    memory_limit_bytes: int, workers: int, max_image_pixels: int, max_download_bytes: int
) -> list[Largest]:
    """The largest still image of each kind that a pod with these settings converts.

    Pure: from the cost table (BYTES_PER_PIXEL), the bytes a photo's file takes per pixel
    (PHOTO_FILE_BYTES_PER_PIXEL), the pod's memory limit in bytes (MEMORY_LIMIT_BYTES),
    its gunicorn worker count (WEB_CONCURRENCY), the pixel cap (MAX_IMAGE_PIXELS) and the
    download cap (MAX_DOWNLOAD_BYTES). For each kind (JPEG, PNG, GIF, lossy WebP, lossless
    WebP) the largest pixel count that all three limits let through, and the limit that
    binds first: the pixel cap; the download cap, past which a photo's file is too big to
    download; or the memory limit, past which the conversion's cost (pixels times its bytes
    per pixel, plus the file) exceeds the pod's conversion budget. Ties name the limit
    that comes first in that order. A pod that cannot convert even one pixel of a kind
    gets 0 pixels and the memory limit.
    """
    budget = conversion_budget(ServingSettings(memory_limit_bytes=memory_limit_bytes), workers)
    found = []
    for kind, file_bytes in PHOTO_FILE_BYTES_PER_PIXEL.items():
        by_download = int(max_download_bytes / file_bytes)
        by_memory = max(0, int(budget / (BYTES_PER_PIXEL[kind] + file_bytes)))
        candidates = [
            (max_image_pixels, PIXEL_LIMIT),
            (by_download, DOWNLOAD_LIMIT),
            (by_memory, MEMORY_LIMIT),
        ]
        pixels, binding = min(candidates, key=lambda candidate: candidate[0])
        found.append(Largest(kind, pixels, binding))
    return found


def describe_limits(largest: list[Largest]) -> str:
    """largest_images() in one sentence."""
    parts = [f"{item.name} {item.megapixels} ({item.binding} binds first)" for item in largest]
    return "The largest photo-like still image of each kind this pod converts: " + (
        "; ".join(parts) + "."
    )


def memory_to_convert(kind: str, pixels: int, workers: int) -> int:
    """The least memory limit, in whole MiB, at which a pod of `workers` converts `pixels` of
    a photo-like image of `kind`, whatever its download and pixel caps."""

    def enough(mib: int) -> bool:
        found = largest_images(mib * MIB, workers, pixels, sys.maxsize)
        return next(item for item in found if item.kind == kind).pixels >= pixels

    low, high = 0, 1024
    while not enough(high):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high
