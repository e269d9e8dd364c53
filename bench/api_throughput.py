"""POST /processed throughput and latency under gunicorn, with 8 concurrent clients.

Run: .venv/bin/python bench/api_throughput.py [--seconds 10] [--images 500] [--workers 2]
Starts moto's S3 server, gunicorn and a local origin, all on 127.0.0.1, on this machine's
cores; the clients share those cores too. Two phases:
  fresh  - every request converts an image never converted before (800x600 JPEGs);
  stored - every request repeats a conversion, answered from the stored result.
"""

from __future__ import annotations

import argparse
import io
import os
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import urllib3
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLIENTS = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except (OSError, urllib3.exceptions.HTTPError):
            pass
        time.sleep(0.1)
    sys.exit(f"error: {what} did not start within {seconds:g}s")


def make_images(count: int) -> dict[str, bytes]:
    """Distinct 800x600 photo-like JPEGs: gradients, noise and a number."""
    base = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((800, 600)),
            Image.radial_gradient("L").resize((800, 600)),
            Image.effect_noise((800, 600), 40),
        ),
    )
    images = {}
    for number in range(count):
        image = base.rotate(number % 360)
        ImageDraw.Draw(image).text((10 + number % 700, 10), f"image {number}", fill=(255, 0, 0))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        images[f"{number}.jpg"] = out.getvalue()
    return images


@contextmanager
def origin(images: dict[str, bytes]) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = images.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("w") as output:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        yield
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def run_phase(
    http: urllib3.PoolManager, url: str, paths: Callable[[], str | None], seconds: float
) -> tuple[list[float], int, float]:
    """8 clients POST /processed until time is up or paths run out: latencies, errors, time."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + seconds

    def client() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            path = paths()
            if path is None:
                return
            sent = time.perf_counter()
            try:
                status = http.request("POST", url, json={"path": path}).status
            except urllib3.exceptions.HTTPError:
                status = 0
            took = time.perf_counter() - sent
            with lock:
                if status == 201:
                    latencies.append(took)
                else:
                    errors += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - started


def report(name: str, latencies: list[float], errors: int, elapsed: float) -> None:
    if len(latencies) < 2:
        print(f"{name:<8} too few answers ({len(latencies)}), errors {errors}")
        return
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        f"{name:<8}{len(latencies):>9}{len(latencies) / elapsed:>10.1f}"
        f"{cuts[49] * 1000:>10.1f}{cuts[98] * 1000:>10.1f}{errors:>8}{elapsed:>9.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--images", type=int, default=500, help="distinct images to convert")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn WEB_CONCURRENCY")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    s3_port, api_port = free_port(), free_port()
    http = urllib3.PoolManager(maxsize=CLIENTS, timeout=urllib3.Timeout(connect=5, read=120))
    images = make_images(args.images)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS")}
    env = {
        **base_env,
        "MINIO_ENDPOINT": f"127.0.0.1:{s3_port}",
        "MINIO_ACCESS_KEY": "bench",
        "MINIO_SECRET_KEY": "bench-secret",
        "FETCH_ALLOW_PRIVATE_NETWORKS": "true",  # the origin is on loopback
        "WEB_CONCURRENCY": str(args.workers),
    }
    moto = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)]
    gunicorn = [
        str(BIN / "gunicorn"),
        "--config",
        "python:service.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{api_port}",
        "service.app:create_app()",
    ]
    api = f"http://127.0.0.1:{api_port}"
    with (
        origin(images) as origin_port,
        process(moto, env, work / "moto.log"),
        process(gunicorn, env, work / "gunicorn.log"),
    ):
        wait_until(lambda: http.request("GET", f"{api}/readyz").status == 200, 60, "the API")
        seeded = queue.SimpleQueue[str]()

        def seed(name: str) -> None:
            url = f"http://127.0.0.1:{origin_port}/{name}"
            answer = http.request("POST", f"{api}/incoming", json={"url": url})
            if answer.status != 201:
                sys.exit(f"error: seeding {name} answered {answer.status}: {answer.data[:200]!r}")
            seeded.put(answer.json()["path"])

        names = queue.SimpleQueue[str]()
        for name in images:
            names.put(name)

        def seeder() -> None:
            while True:
                try:
                    seed(names.get_nowait())
                except queue.Empty:
                    return

        threads = [threading.Thread(target=seeder) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        paths = [seeded.get() for _ in range(seeded.qsize())]

        print(f"machine: {os.cpu_count()} CPUs, shared by moto, gunicorn, the origin and clients")
        print(
            f"gunicorn: {args.workers} workers x 4 threads (gthread); {CLIENTS} clients; "
            f"{len(paths)} distinct 800x600 JPEGs ({sum(map(len, images.values())) / len(images) / 1e3:.0f} kB avg)"
        )
        print(
            f"\n{'phase':<8}{'answers':>9}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'secs':>9}"
        )
        fresh = iter(paths)
        fresh_lock = threading.Lock()

        def next_fresh() -> str | None:
            with fresh_lock:
                return next(fresh, None)

        report("fresh", *run_phase(http, f"{api}/processed", next_fresh, args.seconds))
        chooser = random.Random(1)
        report(
            "stored",
            *run_phase(http, f"{api}/processed", lambda: chooser.choice(paths), args.seconds),
        )
        print("\nfresh ends early when every image has been converted once.")


if __name__ == "__main__":
    main()
