"""Greyscale time per image: service.imaging against ImageMagick's convert and jpegtran.

Run: .venv/bin/python bench/greyscale.py [--runs 7]
Needs the real ImageMagick (/usr/bin/convert) and jpegtran (Debian: imagemagick,
libjpeg-turbo-progs). Inputs are made here with Pillow: gradients plus noise, so that they
compress like photographs.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.imaging import PNG_COMPRESS_LEVEL, greyscale

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


def inputs() -> dict[str, tuple[str, bytes]]:
    big = photo(4000, 3000)  # 12 megapixels
    small = photo(800, 600)

    def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
        out = io.BytesIO()
        image.save(out, fmt, **options)
        return out.getvalue()

    return {
        "12 MP JPEG": ("JPEG", encode(big, "JPEG", quality=90)),
        "12 MP PNG": ("PNG", encode(big, "PNG")),
        "800x600 JPEG": ("JPEG", encode(small, "JPEG", quality=90)),
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per tool (median)")
    args = parser.parse_args()
    if not CONVERT.exists():
        sys.exit(f"error: {CONVERT} not found (apt-get install imagemagick)")
    version = subprocess.run([str(CONVERT), "-version"], capture_output=True, text=True, check=True)
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"convert: {CONVERT} ({version.stdout.splitlines()[0].removeprefix('Version: ')})")
    print(f"jpegtran: {JPEGTRAN}")
    print(
        f"Pillow {Image.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}, "
        f"zlib {features.version('zlib')}; PNG compress_level={PNG_COMPRESS_LEVEL}"
    )
    print(f"median of {args.runs} runs, bytes in to bytes out\n")
    header = (
        f"{'image':<14}{'size':>9}{'ours ms':>10}{'convert ms':>12}{'jpegtran ms':>13}"
        f"{'vs convert':>12}{'vs jpegtran':>13}{'out size':>10}"
    )
    print(header)
    print("-" * len(header))
    for label, (fmt, data) in inputs().items():
        ours = median_seconds(lambda data=data: greyscale(io.BytesIO(data), MAX_PIXELS), args.runs)
        out_size = len(greyscale(io.BytesIO(data), MAX_PIXELS).data)
        convert = median_seconds(
            subprocess_run([str(CONVERT), "-", "-colorspace", "Gray", "-"], data), args.runs
        )
        if fmt == "JPEG":
            jpegtran = median_seconds(
                subprocess_run([str(JPEGTRAN), "-grayscale"], data), args.runs
            )
            tran_ms, vs_tran = f"{jpegtran * 1000:.1f}", f"{ours / jpegtran:.2f}x time"
        else:
            tran_ms, vs_tran = "-", "-"
        print(
            f"{label:<14}{len(data) / 1e6:>7.1f}MB{ours * 1000:>10.1f}{convert * 1000:>12.1f}"
            f"{tran_ms:>13}{convert / ours:>10.1f}x{vs_tran:>13}{out_size / 1e6:>8.1f}MB"
        )
    print("\ntargets: >= 4x faster than convert on JPEG, >= 8x on PNG, <= 1.25x jpegtran's time")


if __name__ == "__main__":
    main()
