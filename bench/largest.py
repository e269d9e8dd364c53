"""The largest image of each kind that a pod's settings admit, made with Pillow.

Shared by `bench/serving.py --memory` and the memory test. "Admitted" is what POST /incoming
lets in: at most the pixel cap, a file within the download cap, and a conversion cost (from
the admission's table) within the pod's conversion budget. The content is photo-like but
smooth enough for the largest sizes to stay under a download cap of a few tens of MiB.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from service.admission import conversion_cost
from service.limits import BYTES_PER_PIXEL

KINDS = ("JPEG", "PNG", "GIF", "WEBP", "WEBP lossless")
# PNG's largest is at the pixel cap only where its file is small: smoother noise.
_GRAIN = {"PNG": 64}
_SAVE: dict[str, tuple[str, dict[str, object]]] = {
    "JPEG": ("JPEG", {"quality": 85}),
    "PNG": ("PNG", {"compress_level": 1}),
    "GIF": ("GIF", {}),
    "WEBP": ("WEBP", {"quality": 80, "method": 0}),
    "WEBP lossless": ("WEBP", {"lossless": True, "method": 0, "quality": 0}),
}


def picture(width: int, height: int, seed: int, grain: int = 16) -> Image.Image:
    """Gradients, noise `grain` pixels coarse, and a few shapes: no two rows alike."""
    ramp = Image.linear_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    radial = Image.radial_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    coarse = Image.effect_noise((max(1, width // grain), max(1, height // grain)), 32)
    noise = coarse.resize((width, height), Image.Resampling.BILINEAR)
    image = Image.merge("RGB", (ramp, Image.blend(radial, noise, 0.5), noise))
    draw = ImageDraw.Draw(image)
    for number in range(12):
        left = (seed * 97 + number * 131) % max(1, width - 64)
        top = (seed * 53 + number * 71) % max(1, height - 64)
        draw.ellipse((left, top, left + width // 10, top + height // 10), fill=(number * 20, 0, 90))
    return image


def encode(kind: str, image: Image.Image) -> bytes:
    fmt, options = _SAVE[kind]
    out = io.BytesIO()
    (image.convert("L") if kind == "GIF" else image).save(out, fmt, **options)
    return out.getvalue()


def largest_admitted(
    kind: str, budget: int, max_pixels: int, max_download_bytes: int, seed: int = 0
) -> bytes:
    """An image of `kind`, 4:3, as large as the limits admit, within 3 % of its pixels."""
    # Pillow's own bomb limit is process-wide, and whichever app this process made last set
    # it; here it is the pixel cap being admitted to, as in the server that admits them.
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
    try:
        return _largest(kind, budget, max_pixels, max_download_bytes, seed)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _largest(kind: str, budget: int, max_pixels: int, max_download_bytes: int, seed: int) -> bytes:
    # The file's bytes per pixel, from a 1 MP try, tell the size the download cap allows.
    trial = len(encode(kind, picture(1155, 866, seed, _GRAIN.get(kind, 16)))) / (1155 * 866)
    pixels = min(max_pixels, budget // BYTES_PER_PIXEL[kind], int(max_download_bytes / trial))
    while True:
        width = int((pixels * 4 / 3) ** 0.5)
        height = pixels // max(1, width)
        data = encode(kind, picture(width, height, seed, _GRAIN.get(kind, 16)))
        cost = conversion_cost(io.BytesIO(data), max_pixels)
        if cost is not None and cost <= budget and len(data) <= max_download_bytes:
            return data
        pixels = int(pixels * 0.97)
