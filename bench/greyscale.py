"""Greyscale conversion: time against ImageMagick and jpegtran, sizes against Pillow's defaults.

Run: .venv/bin/python bench/greyscale.py [--runs 7]
Needs the real ImageMagick (/usr/bin/convert) and jpegtran (Debian: imagemagick,
libjpeg-turbo-progs). Every input is made here with Pillow, nothing is downloaded:
  photos       gradients plus noise, smoothed noise at several scales, a Mandelbrot set;
  graphics     a screenshot (bars, text, buttons) and a chart;
  gradients    vertical, radial, diagonal, and a small 256x256 one.
Four tables: time per image; PNG sizes against Pillow's default encoder for the same grey
pixels, at several sizes (target: at most 1.15x); WebP sizes against the input's (lossy:
target at most 1.1x on photos) and against Pillow's lossless encoder, with whether they
decode as grey (lossy: within 1 per channel; lossless: exactly); the cost of the check
POST /incoming makes before storing a download. --quick: one size of each PNG only.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import pyvips
from PIL import Image, ImageChops, ImageDraw, ImageFilter, features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.imaging import WEBP_LOSSLESS, WEBP_LOSSY, check, greyscale
from service.pngwrite import DEFLATE as PNG_DEFLATE

# Not whatever `convert` is first on PATH: only the real ImageMagick binary is a fair baseline.
CONVERT = Path("/usr/bin/convert")
JPEGTRAN = Path(shutil.which("jpegtran") or "/usr/bin/jpegtran")
MAX_PIXELS = 64_000_000


def photo(width: int, height: int) -> Image.Image:
    ramp = Image.linear_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    radial = Image.radial_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    noise = Image.effect_noise((width, height), 24)
    red = Image.blend(ramp, noise, 0.3)
    green = Image.blend(radial, noise, 0.3)
    blue = Image.blend(ramp.transpose(Image.Transpose.ROTATE_180), noise, 0.3)
    return Image.merge("RGB", (red, green, blue))


def texture(width: int, height: int) -> Image.Image:
    """Noise smoothed at several scales: clouds, foliage, skin more than static."""
    layers = []
    for scale, radius in ((1, 0), (4, 1), (16, 2)):
        noise = Image.effect_noise((width // scale, height // scale), 64)
        noise = noise.resize((width, height), Image.Resampling.BICUBIC)
        layers.append(noise.filter(ImageFilter.GaussianBlur(radius)) if radius else noise)
    base = Image.blend(layers[1], layers[2], 0.6)
    return Image.merge("RGB", (base, Image.blend(base, layers[0], 0.15), layers[2]))


def mandelbrot(width: int, height: int) -> Image.Image:
    fractal = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 0.8, 1.2), 100)
    mirrored = fractal.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return Image.merge("RGB", (fractal, mirrored, fractal.filter(ImageFilter.BLUR)))


def screenshot(width: int, height: int) -> Image.Image:
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "image", "kube", "greyscale"]
    rng = random.Random(1)
    image = Image.new("RGB", (width, height), (246, 246, 246))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 40), fill=(40, 60, 120))
    draw.rectangle((0, 40, 180, height), fill=(230, 232, 236))
    for y in range(60, height - 180, 22):
        draw.text((200, y), " ".join(rng.choice(words) for _ in range(12)), fill=(20, 20, 20))
        draw.text((10, y), "menu item", fill=(60, 60, 60))
    for number in range(4):
        left = 200 + number * 150
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        box = (left, height - 160, left + 130, height - 40)
        draw.rounded_rectangle(box, 8, fill=colour, outline=(0, 0, 0))
    return image


def chart(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 40):
        draw.line((x, 0, x, height), fill=(220, 220, 220))
    for y in range(0, height, 40):
        draw.line((0, y, width, y), fill=(220, 220, 220))
    curve = [(x, height / 2 + height / 3 * math.sin(x / 50)) for x in range(0, width, 4)]
    draw.line(curve, fill=(200, 30, 30), width=3)
    for number in range(10):
        left = 40 + number * 70
        draw.rectangle(
            (left, height - 40 - number * 30, left + 50, height - 40), fill=(30, 90, 200)
        )
    draw.text((20, 20), "Requests per second", fill="black")
    return image


def smooth(width: int, height: int) -> Image.Image:
    """A smooth colour gradient without noise: a sky, a studio backdrop, a rendered scene."""
    ramp = Image.linear_gradient("L").resize((width, height), Image.Resampling.BICUBIC)
    radial = Image.radial_gradient("L").resize((width, height), Image.Resampling.BICUBIC)
    turned = Image.linear_gradient("L").rotate(30, resample=Image.Resampling.BICUBIC)
    return Image.merge(
        "RGB", (ramp, radial, turned.resize((width, height), Image.Resampling.BICUBIC))
    )


def soft_photo(width: int, height: int) -> Image.Image:
    """Texture blurred as a lens blurs it: less noise than photo(), as camera photos have."""
    return texture(width, height).filter(ImageFilter.GaussianBlur(2))


def gradients(width: int, height: int) -> dict[str, Image.Image]:
    vertical = Image.linear_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    radial = Image.radial_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    turned = Image.linear_gradient("L").rotate(45, resample=Image.Resampling.BILINEAR)
    turned = turned.resize((width, height), Image.Resampling.BICUBIC)
    return {
        "gradient vertical": vertical.convert("RGB"),
        "gradient radial": radial.convert("RGB"),
        "gradient diagonal": Image.merge(
            "RGB", (turned, turned.transpose(Image.Transpose.FLIP_LEFT_RIGHT), vertical)
        ),
        "gradient 256x256": Image.linear_gradient("L").convert("RGB"),
    }


def corpus() -> dict[str, Image.Image]:
    return {
        "photo noise": photo(800, 600),
        "photo texture": texture(800, 600),
        "photo fractal": mandelbrot(800, 600),
        "photo soft": soft_photo(800, 600),
        "smooth": smooth(800, 600),
        "screenshot": screenshot(1280, 800),
        "chart": chart(800, 600),
        **gradients(800, 600),
    }


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def median_seconds(run: Callable[[], object], runs: int) -> float:
    run()  # warm-up: caches, lazy imports
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def subprocess_run(command: list[str], data: bytes) -> Callable[[], bytes]:
    def run() -> bytes:
        return subprocess.run(command, input=data, capture_output=True, check=True).stdout

    return run


def ours(data: bytes) -> Callable[[], bytes]:
    return lambda: greyscale(io.BytesIO(data), MAX_PIXELS).data


def interleaved(tools: Mapping[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median seconds of each tool, run in turns and in rotating order, so that a busy
    moment of a shared machine falls on all of them alike."""
    for run in tools.values():
        run()  # warm-up: caches, lazy imports
    taken: dict[str, list[float]] = {name: [] for name in tools}
    names = list(tools)
    for number in range(runs):
        for name in names[number % len(names) :] + names[: number % len(names)]:
            started = time.perf_counter()
            tools[name]()
            taken[name].append(time.perf_counter() - started)
    return {name: statistics.median(seconds) for name, seconds in taken.items()}


def times(runs: int) -> None:
    big, small = photo(4000, 3000), photo(800, 600)
    inputs = {
        "12 MP JPEG": ("JPEG", encode(big, "JPEG", quality=90)),
        "12 MP PNG": ("PNG", encode(big, "PNG")),
        "800x600 JPEG": ("JPEG", encode(small, "JPEG", quality=90)),
        "800x600 PNG": ("PNG", encode(small, "PNG")),
        "800x600 WebP": ("WEBP", encode(small, "WEBP", quality=90)),
    }
    header = (
        f"{'image':<14}{'size':>9}{'ours ms':>10}{'convert ms':>12}{'jpegtran ms':>13}"
        f"{'vs convert':>12}{'vs jpegtran':>13}{'out size':>10}"
    )
    print(header)
    print("-" * len(header))
    for label, (fmt, data) in inputs.items():
        tools = {
            "ours": ours(data),
            "convert": subprocess_run([str(CONVERT), "-", "-colorspace", "Gray", "-"], data),
        }
        if fmt == "JPEG":
            tools["jpegtran"] = subprocess_run([str(JPEGTRAN), "-grayscale"], data)
        took = interleaved(tools, runs)
        mine = took["ours"]
        if "jpegtran" in took:
            tran_ms, vs_tran = (
                f"{took['jpegtran'] * 1000:.1f}",
                f"{mine / took['jpegtran']:.2f}x time",
            )
        else:
            tran_ms, vs_tran = "-", "-"
        print(
            f"{label:<14}{len(data) / 1e6:>7.2f}MB{mine * 1000:>10.1f}{took['convert'] * 1000:>12.1f}"
            f"{tran_ms:>13}{took['convert'] / mine:>10.1f}x{vs_tran:>13}"
            f"{len(ours(data)()) / 1e6:>8.3f}MB"
        )
    print("targets: >= 4x faster than convert on JPEG, >= 8x on PNG, <= 1.25x jpegtran's time")


PNG_SIZES = ((800, 600), (1024, 768), (1632, 1224), (4000, 3000))


def png_inputs(quick: bool) -> dict[str, bytes]:
    """Photos, screenshots, charts and smooth gradients at several sizes, as PNGs."""
    makers: dict[str, Callable[[int, int], Image.Image]] = {
        "photo noise": photo,
        "photo soft": soft_photo,
        "photo fractal": mandelbrot,
        "smooth": smooth,
        "screenshot": screenshot,
        "chart": chart,
        "gradient radial": lambda w, h: gradients(w, h)["gradient radial"],
        "gradient diagonal": lambda w, h: gradients(w, h)["gradient diagonal"],
    }
    inputs = {}
    for width, height in PNG_SIZES[:1] if quick else PNG_SIZES:
        for label, make in makers.items():
            # 12 MP: the kinds whose level differs by piece; Pillow's encoder takes seconds.
            if width * height > 4_000_000 and label not in ("photo soft", "smooth", "screenshot"):
                continue
            inputs[f"{label} {width}x{height}"] = encode(make(width, height), "PNG")
    screen = screenshot(1280, 800)
    inputs["screenshot palette"] = encode(
        screen.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"
    )
    inputs["chart alpha"] = encode(chart(800, 600).convert("RGBA"), "PNG")
    return inputs


def png_sizes(runs: int, quick: bool) -> None:
    print(
        f"\nPNG: ours against Pillow's default encoder (level 6, adaptive filters); {PNG_DEFLATE}"
    )
    header = (
        f"{'image':<28}{'pixels':>10}{'ours B':>10}{'Pillow B':>10}{'ratio':>7}"
        f"{'ours ms':>9}{'Pillow ms':>10}"
    )
    print(header)
    print("-" * len(header))
    total_ours = total_pillow = 0
    worst = 0.0
    for label, data in png_inputs(quick).items():
        mine = ours(data)()
        # Pillow's default encoder, for the very pixels (and mode) of our output.
        grey = Image.open(io.BytesIO(mine))
        grey.load()
        pillow = encode(grey, "PNG")
        mine_ms = median_seconds(ours(data), runs) * 1000
        pillow_ms = median_seconds(partial(encode, grey, "PNG"), runs) * 1000
        ratio = len(mine) / len(pillow)
        worst = max(worst, ratio)
        total_ours += len(mine)
        total_pillow += len(pillow)
        print(
            f"{label:<28}{grey.width * grey.height:>10}{len(mine):>10}{len(pillow):>10}"
            f"{ratio:>7.2f}{mine_ms:>9.1f}{pillow_ms:>10.1f}"
        )
    print(
        f"all: {total_ours / total_pillow:.2f}x Pillow's bytes; worst image {worst:.2f}x "
        "(target: at most 1.15x). ours ms: the whole conversion; Pillow ms: its encoder alone."
    )


def grey_within(data: bytes) -> int:
    """The largest difference between two channels of any pixel: 0 is true grey."""
    red, green, blue = Image.open(io.BytesIO(data)).convert("RGB").split()
    largest = 0
    for one, other in ((red, green), (green, blue)):
        extrema = ImageChops.difference(one, other).getextrema()
        assert isinstance(extrema[1], int)
        largest = max(largest, extrema[1])
    return largest


def webp(images: dict[str, Image.Image], runs: int) -> None:
    print(f"\nWebP from lossy inputs: ours {WEBP_LOSSY} against the input's bytes")
    header = (
        f"{'image':<19}{'input q':>8}{'in B':>9}{'ours B':>9}{'ratio':>7}{'ours ms':>9}{'grey':>6}"
    )
    print(header)
    print("-" * len(header))
    for label, image in images.items():
        for quality in (75, 80, 90):
            data = encode(image, "WEBP", quality=quality)
            mine = ours(data)()
            print(
                f"{label:<19}{quality:>8}{len(data):>9}{len(mine):>9}{len(mine) / len(data):>7.2f}"
                f"{median_seconds(ours(data), runs) * 1000:>9.1f}{'±' + str(grey_within(mine)):>6}"
            )
    print("target: at most 1.1x the input's bytes on photos; grey within 1 per channel")
    print(f"\nWebP from lossless inputs: ours {WEBP_LOSSLESS} against Pillow's lossless defaults")
    header = f"{'image':<19}{'ours B':>9}{'ours ms':>9}{'grey':>6}{'Pillow B':>10}{'Pillow ms':>10}"
    print(header)
    print("-" * len(header))
    for label, image in images.items():
        data = encode(image, "WEBP", lossless=True)
        mine = ours(data)()
        grey = Image.open(io.BytesIO(data)).convert("L")

        def pillow(grey: Image.Image = grey) -> bytes:
            return encode(grey, "WEBP", lossless=True)

        print(
            f"{label:<19}{len(mine):>9}{median_seconds(ours(data), runs) * 1000:>9.1f}"
            f"{'±' + str(grey_within(mine)):>6}{len(pillow()):>10}"
            f"{median_seconds(pillow, runs) * 1000:>10.1f}"
        )
    print("Pillow ms: its encoder alone, from the grey pixels; ours ms: the whole conversion")


def door_check(runs: int) -> None:
    print("\nThe check before storing a download (POST /incoming) against a full decode")
    big, small = photo(4000, 3000), photo(800, 600)
    inputs = {
        "12 MP JPEG": encode(big, "JPEG", quality=90),
        "12 MP PNG": encode(big, "PNG"),
        "800x600 JPEG": encode(small, "JPEG", quality=90),
        "800x600 PNG": encode(small, "PNG"),
    }
    print(f"{'image':<14}{'check ms':>10}{'full decode ms':>16}")
    for label, data in inputs.items():

        def full(data: bytes = data) -> None:
            Image.open(io.BytesIO(data)).load()

        def checked_only(data: bytes = data) -> None:
            check(io.BytesIO(data), MAX_PIXELS)

        checked = median_seconds(checked_only, runs)
        print(f"{label:<14}{checked * 1000:>10.1f}{median_seconds(full, runs) * 1000:>16.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per tool (median)")
    parser.add_argument("--quick", action="store_true", help="PNG sizes at 800x600 only")
    args = parser.parse_args()
    if not CONVERT.exists():
        sys.exit(f"error: {CONVERT} not found (apt-get install imagemagick)")
    version = subprocess.run([str(CONVERT), "-version"], capture_output=True, text=True, check=True)
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"convert: {CONVERT} ({version.stdout.splitlines()[0].removeprefix('Version: ')})")
    print(f"jpegtran: {JPEGTRAN}")
    print(
        f"Pillow {Image.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}, "
        f"zlib {features.version('zlib')}, libwebp {features.version('webp')}"
    )
    print(f"libvips {'.'.join(str(pyvips.version(part)) for part in range(3))}")
    print(f"median of {args.runs} runs, bytes in to bytes out\n")
    times(args.runs)
    images = corpus()
    png_sizes(args.runs, args.quick)
    webp(images, args.runs)
    door_check(args.runs)


if __name__ == "__main__":
    main()
