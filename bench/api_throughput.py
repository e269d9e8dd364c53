"""POST /processed: this API against a naive Flask + Pillow app and the original app.

Run: .venv/bin/python bench/api_throughput.py [--rounds 3] [--images 500] [--seconds 8]
     [--apps ours,naive,original] [--formats jpeg,png-photo,png-screenshot,webp-lossy,...]
Needs Debian's imagemagick (/usr/bin/convert) for the original app.

Formats (each image distinct; --formats picks some, all by default):
  jpeg            800x600 photo, quality 85 (the original app runs on this one only)
  png-photo       800x600 photo, Pillow's default encoder
  png-screenshot  2000x1500 screenshot, Pillow's default encoder
  webp-lossy      800x600 photo, quality 80
  webp-lossless   800x600 chart and screenshot, lossless
  gif             800x600 photo, Pillow's default palette

One S3 server process (moto, counting requests and TCP connections: bench/counting_s3.py)
serves all three apps, which run side by side on loopback:
  ours      the API as deployed: `python -m service.serve` with its own server settings;
  naive     Flask + Pillow under gunicorn with the same workers and threads (bench/api_baselines.py);
  original  the original app: Flask's own server, `convert` as a subprocess, whole reads.
Each round runs, for every app in a rotating order, two phases with 8 clients:
  fresh     every request converts an image of the format that app never saw;
  repeat    every request repeats a conversion that app did before.
Per format, app and phase: req/s, p50/p99, CPU of the app's process tree per request, S3
calls per request as the S3 server counted them (GET / PUT / HEAD), new S3 connections,
errors; and the mean size of each app's outputs.
The machine is shared: compare the ratios of one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import urllib3
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    ACCESS_KEY,
    BIN,
    ROOT,
    SECRET_KEY,
    HarnessError,
    free_port,
    listening,
    process,
    sha256,
    wait_until,
)
from service.settings import ServingSettings, StorageSettings, env_pairs

CLIENTS = 8
THREADS = 4  # per worker: gunicorn's gthread settings of the API, given to the naive app too
APPS = ("ours", "naive", "original")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    """What one phase of one app measured."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    s3: dict[str, int] = field(default_factory=dict)
    connections: int = 0

    def add(self, other: Phase) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.seconds += other.seconds
        self.cpu_seconds += other.cpu_seconds
        self.connections += other.connections
        for key, count in other.s3.items():
            self.s3[key] = self.s3.get(key, 0) + count


@dataclass
class App:
    """One of the apps under test, running."""

    name: str
    base: str
    pid: int
    fresh: list[list[str]]  # per round: incoming paths never converted by this app
    converted: dict[str, None] = field(default_factory=dict)  # ordered, with O(1) lookups
    results: list[str] = field(default_factory=list)  # processed paths of fresh conversions


def tree_cpu_seconds(root: int) -> float:
    """CPU time of `root` and every descendant, the reaped ones included (from /proc)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        found = stats.get(pid)
        if found is not None:
            # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the name.
            total += sum(int(value) for value in found[11:15])
        todo += children.get(pid, [])
    return total / CLOCK_TICKS


def s3_counts(http: urllib3.PoolManager, endpoint: str) -> tuple[dict[str, int], int]:
    answer = http.request("GET", f"http://{endpoint}/_bench/counts")
    counts = json.loads(answer.data)
    return dict(counts["requests"]), int(counts["connections"])


def run_phase(
    http: urllib3.PoolManager,
    app: App,
    next_path: Callable[[], str | None],
    seconds: float,
    s3_endpoint: str,
) -> Phase:
    """8 clients POST /processed until time is up or paths run out.

    The clients open new connections for each phase: the kernel spreads connections over
    an app's workers at random, and a spread kept for the whole run would decide it.
    """
    clients = urllib3.PoolManager(maxsize=CLIENTS, timeout=urllib3.Timeout(connect=5, read=120))
    phase = Phase()
    lock = threading.Lock()
    s3_before, connections_before = s3_counts(http, s3_endpoint)
    cpu_before = tree_cpu_seconds(app.pid)
    started = time.perf_counter()
    deadline = started + seconds

    def client() -> None:
        while time.perf_counter() < deadline:
            path = next_path()
            if path is None:
                return
            sent = time.perf_counter()
            try:
                answer = clients.request("POST", f"{app.base}/processed", json={"path": path})
                ok = answer.status == 201
            except urllib3.exceptions.HTTPError:
                ok = False
            took = time.perf_counter() - sent
            with lock:
                if ok:
                    phase.latencies.append(took)
                    if path not in app.converted:
                        app.results.append(answer.json()["path"])
                    app.converted.setdefault(path)
                else:
                    phase.errors += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started
    clients.clear()
    time.sleep(0.3)  # work the app does after answering (a write off the request path) counts
    phase.cpu_seconds = tree_cpu_seconds(app.pid) - cpu_before
    s3_after, connections_after = s3_counts(http, s3_endpoint)
    phase.s3 = {key: s3_after.get(key, 0) - s3_before.get(key, 0) for key in s3_after}
    phase.connections = connections_after - connections_before
    return phase


def fresh_paths(paths: list[str]) -> Callable[[], str | None]:
    remaining = iter(paths)
    lock = threading.Lock()

    def take() -> str | None:
        with lock:
            return next(remaining, None)

    return take


def repeat_paths(paths: list[str], seed: int) -> Callable[[], str | None]:
    chooser = random.Random(seed)
    lock = threading.Lock()
    known = list(paths)

    def take() -> str | None:
        with lock:
            return chooser.choice(known)

    return take


@functools.cache
def _photo_base() -> Image.Image:
    return Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((800, 600)),
            Image.radial_gradient("L").resize((800, 600)),
            Image.effect_noise((800, 600), 40),
        ),
    )


@functools.cache
def _palette_base() -> Image.Image:
    return _photo_base().quantize(256)


def _photo(number: int, mode: str = "RGB") -> Image.Image:
    """A photo-like 800x600 image, as bench/harness.py makes them, numbered; "P" for GIFs
    (quantised once: Pillow takes seconds to quantise each)."""
    image = (_palette_base() if mode == "P" else _photo_base()).rotate(number % 360)
    ImageDraw.Draw(image).text((10 + number % 700, 10), f"image {number}", fill=255)
    return image


def _graphics(number: int, width: int, height: int) -> Image.Image:
    """A screenshot or a chart, numbered; bench/greyscale.py draws them."""
    from bench.greyscale import chart, screenshot

    image = screenshot(width, height) if number % 2 else chart(width, height)
    ImageDraw.Draw(image).text((200, 50 + number % 300), f"image {number}", fill=(200, 0, 0))
    return image


# Inputs are saved as their authors' tools would; the PNGs at zlib level 1, since Pillow's
# default level takes seconds per noisy photo here and the level changes nothing the
# conversion does.
FORMATS: dict[str, tuple[str, Callable[[int], tuple[Image.Image, str, dict[str, object]]]]] = {
    "jpeg": ("image/jpeg", lambda n: (_photo(n), "JPEG", {"quality": 85})),
    "png-photo": ("image/png", lambda n: (_photo(n), "PNG", {"compress_level": 1})),
    "png-screenshot": (
        "image/png",
        lambda n: (_graphics(1, 2000, 1500), "PNG", {"compress_level": 1}),
    ),
    "webp-lossy": ("image/webp", lambda n: (_photo(n), "WEBP", {"quality": 80})),
    "webp-lossless": ("image/webp", lambda n: (_graphics(n, 800, 600), "WEBP", {"lossless": True})),
    "gif": ("image/gif", lambda n: (_photo(n, "P"), "GIF", {})),
}


def _batch(job: tuple[str, range]) -> list[bytes]:
    """Distinct images of one format, numbered from any start."""
    fmt, numbers = job
    batch = []
    for number in numbers:
        image, pillow_format, options = FORMATS[fmt][1](number)
        if fmt == "png-screenshot":  # the text moves with the number: every one is distinct
            ImageDraw.Draw(image).text((300, 300 + number % 900), f"{number}", fill=(0, 0, 0))
        out = io.BytesIO()
        image.save(out, pillow_format, **options)
        batch.append(out.getvalue())
    return batch


def seed_incoming(endpoint: str, images: list[bytes], content_type: str) -> list[str]:
    """Store the images in the incoming bucket directly, as POST /incoming would: their paths."""
    from minio import Minio

    storage = StorageSettings(endpoint=endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    client = Minio(endpoint=endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False)
    for bucket in (storage.incoming_bucket, storage.processed_bucket):
        if not client.bucket_exists(bucket_name=bucket):
            client.make_bucket(bucket_name=bucket)

    def put(data: bytes) -> str:
        name = sha256(data)
        client.put_object(
            bucket_name=storage.incoming_bucket,
            object_name=name,
            data=io.BytesIO(data),
            length=len(data),
            content_type=content_type,
        )
        return f"/incoming/{name}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(put, images))


def output_bytes(endpoint: str, paths: list[str]) -> float:
    """The mean size of stored results (up to 40 of them)."""
    from minio import Minio

    storage = StorageSettings(endpoint=endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    client = Minio(endpoint=endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False)
    sizes = [
        client.stat_object(
            bucket_name=storage.processed_bucket, object_name=path.rsplit("/", 1)[1]
        ).size
        or 0
        for path in paths[:40]
    ]
    return statistics.mean(sizes) if sizes else 0.0


@contextmanager
def started_apps(
    stack: ExitStack, env: dict[str, str], work: Path, workers: int, names: tuple[str, ...]
) -> Iterator[dict[str, tuple[str, int]]]:
    """Start the apps named: name -> (base URL, pid of the process tree's root)."""
    ports = {name: free_port() for name in names}
    running = {}
    for name, port in ports.items():
        command = _command(name, port, workers)
        child = stack.enter_context(process(command, env, work / f"{name}.log"))
        running[name] = (f"http://127.0.0.1:{port}", child.pid)
    for name, port in ports.items():
        wait_until(partial(listening, port), 60, f"{name} listening")
    yield running


def _command(name: str, port: int, workers: int) -> list[str]:
    bind = f"127.0.0.1:{port}"
    if name == "ours":
        return [str(BIN / "python"), "-m", "service.serve", "--bind", bind]
    if name == "naive":
        return [
            *(str(BIN / "gunicorn"), "--workers", str(workers), "--threads", str(THREADS)),
            *("--worker-class", "gthread", "--bind", bind, "bench.api_baselines:naive_app()"),
        ]
    return [str(BIN / "python"), "bench/api_baselines.py", str(port)]


def report(title: str, results: dict[str, Phase]) -> None:
    print(f"\n{title}")
    header = (
        f"{'app':<10}{'answers':>8}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/req':>11}"
        f"{'S3/req':>7}{'GET':>6}{'PUT':>6}{'HEAD':>6}{'other':>6}{'reconn':>7}{'errors':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, phase in results.items():
        answers = len(phase.latencies)
        if answers < 2:
            print(f"{name:<10} too few answers ({answers}), errors {phase.errors}")
            continue
        cuts = statistics.quantiles(phase.latencies, n=100, method="inclusive")
        calls = {m: phase.s3.get(f"{m} object", 0) / answers for m in ("GET", "PUT", "HEAD")}
        total = sum(v for k, v in phase.s3.items() if not k.startswith("bucket ")) / answers
        other = total - sum(calls.values())
        print(
            f"{name:<10}{answers:>8}{answers / phase.seconds:>8.1f}{cuts[49] * 1000:>8.1f}"
            f"{cuts[98] * 1000:>8.1f}{phase.cpu_seconds / answers * 1000:>11.2f}{total:>7.2f}"
            f"{calls['GET']:>6.2f}{calls['PUT']:>6.2f}{calls['HEAD']:>6.2f}{other:>6.2f}"
            f"{phase.connections:>7}{phase.errors:>7}"
        )


def rate(phase: Phase) -> float:
    return len(phase.latencies) / phase.seconds if phase.seconds else 0.0


def cpu(phase: Phase) -> float:
    return phase.cpu_seconds / max(1, len(phase.latencies))


def ratios(kind: str, results: dict[str, Phase]) -> None:
    if "ours" not in results:
        return
    ours = results["ours"]
    parts = []
    for other in ("naive", "original"):
        if other in results:
            parts.append(
                f"ours/{other} throughput {rate(ours) / max(rate(results[other]), 1e-9):.2f}x"
            )
    if "naive" in results:
        parts.append(
            f"ours/naive CPU per request {cpu(ours) / max(cpu(results['naive']), 1e-9):.2f}x"
        )
    print(f"{kind}: {', '.join(parts)}")


def uptime() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each in another order")
    parser.add_argument(
        "--images", type=int, default=500, help="fresh images per app, round and format (at most)"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="longest phase")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY of both gunicorns")
    parser.add_argument(
        "--apps",
        default=",".join(APPS),
        help=f"which apps, comma-separated, of {','.join(APPS)} (default: all)",
    )
    parser.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help=f"which formats, comma-separated, of {','.join(FORMATS)} (default: all)",
    )
    args = parser.parse_args()
    names = tuple(name for name in APPS if name in args.apps.split(","))
    unknown = set(args.apps.split(",")) - set(APPS)
    if unknown or not names:
        parser.error(f"--apps: choose from {','.join(APPS)}, not {args.apps!r}")
    formats = tuple(name for name in FORMATS if name in args.formats.split(","))
    if set(args.formats.split(",")) - set(FORMATS) or not formats:
        parser.error(f"--formats: choose from {','.join(FORMATS)}, not {args.formats!r}")
    if "original" in names and not Path("/usr/bin/convert").exists():
        sys.exit("error: /usr/bin/convert not found (apt-get install imagemagick)")

    # The original app converts a few dozen a second, and JPEGs only.
    sizes = {"ours": args.images, "naive": args.images, "original": max(50, args.images // 4)}
    plan: dict[str, dict[str, int]] = {}
    for fmt in formats:
        apps = [name for name in names if name != "original" or fmt == "jpeg"]
        # A 2000x1500 screenshot converts several times slower: fewer are enough.
        scale = 5 if fmt == "png-screenshot" else 1
        plan[fmt] = {name: max(CLIENTS * 2, sizes[name] // scale) for name in apps}
    started = time.perf_counter()
    images: dict[str, list[bytes]] = {}
    with Pool(min(4, os.cpu_count() or 1)) as pool:
        for fmt, per_app in plan.items():
            total = (sum(per_app.values()) * args.rounds) + CLIENTS * len(per_app)
            jobs = [(fmt, range(start, min(start + 50, total))) for start in range(0, total, 50)]
            images[fmt] = [data for batch in pool.map(_batch, jobs) for data in batch]
            made = images[fmt]
            print(
                f"{fmt}: {len(made)} distinct images, {sum(map(len, made)) / len(made) / 1e3:.0f} kB avg",
                flush=True,
            )
    print(f"made in {time.perf_counter() - started:.0f}s")

    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    s3_port = free_port()
    endpoint = f"127.0.0.1:{s3_port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS")}
    storage = StorageSettings(endpoint=endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    env = {
        **base_env,
        **dict(env_pairs(storage, "endpoint", "access_key", "secret_key")),
        **dict(env_pairs(ServingSettings(web_concurrency=args.workers), "web_concurrency")),
        "PYTHONPATH": str(ROOT),
    }
    http = urllib3.PoolManager(maxsize=CLIENTS, timeout=urllib3.Timeout(connect=5, read=120))
    try:
        with ExitStack() as stack:
            s3_command = [str(BIN / "python"), "bench/counting_s3.py", str(s3_port)]
            stack.enter_context(process(s3_command, env, work / "s3.log"))
            wait_until(lambda: listening(s3_port), 30, "the S3 server listening")
            paths = {fmt: seed_incoming(endpoint, images[fmt], FORMATS[fmt][0]) for fmt in formats}
            with started_apps(stack, env, work, args.workers, names) as running:
                summary = {
                    fmt: run(http, endpoint, running, paths[fmt], plan[fmt], args, fmt)
                    for fmt in formats
                }
            print(
                "\nsummary, fresh conversions (ours / naive): throughput, CPU per request, bytes out"
            )
            for fmt, line in summary.items():
                print(f"  {fmt:<15} {line}")
            print(f"load average after: {uptime()}")
    except (HarnessError, subprocess.SubprocessError, OSError) as error:
        sys.exit(f"error: {error} (logs in {work})")


def run(
    http: urllib3.PoolManager,
    endpoint: str,
    running: dict[str, tuple[str, int]],
    paths: list[str],
    per_app: dict[str, int],
    args: argparse.Namespace,
    fmt: str,
) -> str:
    """Every round's phases for one format; the summary line of ours against naive."""
    apps: dict[str, App] = {}
    position = 0
    for name in per_app:
        # One warm-up set, outside the figures: imports, first connections.
        warm_up = paths[position : position + CLIENTS]
        position += CLIENTS
        sets = []
        for _ in range(args.rounds):
            sets.append(paths[position : position + per_app[name]])
            position += per_app[name]
        apps[name] = App(name, running[name][0], running[name][1], sets)
        run_phase(http, apps[name], fresh_paths(warm_up), 30, endpoint)
        apps[name].results.clear()

    print(f"\n=== {fmt}")
    print(f"machine: {os.cpu_count()} CPUs shared by the S3 server, the apps and the clients")
    print(f"load average before: {uptime()}")
    print(
        f"{CLIENTS} clients; gunicorn {args.workers} workers x {THREADS} threads for naive; "
        f"{args.rounds} rounds, phases of at most {args.seconds:g}s"
    )
    names = tuple(per_app)
    totals = {kind: {name: Phase() for name in names} for kind in ("fresh", "repeat")}
    for number in range(args.rounds):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            app = apps[name]
            fresh = run_phase(http, app, fresh_paths(app.fresh[number]), args.seconds, endpoint)
            totals["fresh"][name].add(fresh)
            repeat = run_phase(
                http, app, repeat_paths(list(app.converted), number), args.seconds / 2, endpoint
            )
            totals["repeat"][name].add(repeat)
        print(f"round {number + 1}: {' -> '.join(order)}; load average {uptime()}")

    report(f"fresh: every request converts a {fmt} image never converted before", totals["fresh"])
    report("repeat: every request repeats a conversion done before", totals["repeat"])
    sizes = {name: output_bytes(endpoint, app.results) for name, app in apps.items()}
    print("mean output bytes: " + ", ".join(f"{name} {size:.0f}" for name, size in sizes.items()))
    print()
    ratios("fresh", totals["fresh"])
    ratios("repeat", totals["repeat"])
    print(
        "\nS3/req: requests the S3 server counted per answer; reconn: TCP connections it "
        "accepted during the phases (a pool that keeps them alive opens few)."
    )
    if "ours" not in totals["fresh"] or "naive" not in totals["fresh"]:
        return "(needs ours and naive)"
    ours, naive = totals["fresh"]["ours"], totals["fresh"]["naive"]
    return (
        f"{rate(ours) / max(rate(naive), 1e-9):.2f}x, {cpu(ours) / max(cpu(naive), 1e-9):.2f}x, "
        f"{sizes['ours'] / max(sizes['naive'], 1):.2f}x"
    )


if __name__ == "__main__":
    main()
