"""POST /processed throughput and latency under gunicorn, with 8 concurrent clients.

Run: .venv/bin/python bench/api_throughput.py [--seconds 10] [--images 500] [--workers 2]
Starts moto's S3 server, gunicorn and a local origin, all on 127.0.0.1, on this machine's
cores; the clients share those cores too. Two phases:
  fresh  - every request converts an image never converted before (800x600 JPEGs);
  stored - every request repeats a conversion, answered from the stored result.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import HarnessError, make_images, stack

CLIENTS = 8


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

    images = make_images(args.images)
    try:
        with stack(images, workers=args.workers, clients=CLIENTS) as running:
            run(running.http, running.base, running.seed(list(images), CLIENTS), images, args)
    except HarnessError as error:
        sys.exit(f"error: {error}")


def run(
    http: urllib3.PoolManager,
    api: str,
    paths: list[str],
    images: dict[str, bytes],
    args: argparse.Namespace,
) -> None:
    print(f"machine: {os.cpu_count()} CPUs, shared by moto, gunicorn, the origin and clients")
    print(
        f"gunicorn: {args.workers} gevent workers (service.gunicorn_worker); {CLIENTS} clients; "
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
