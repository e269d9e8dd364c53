"""Sustained load on the image API: 16 clients for 60 s, reads and conversions mixed.

Run: .venv/bin/python bench/load.py [--duration 60] [--clients 16] [--images 300]
Starts moto's S3 server, gunicorn (WEB_CONCURRENCY=2, real workers) and a local origin on
127.0.0.1, seeds `--images` distinct 800x600 JPEGs through POST /incoming, converts a few,
then runs the clients. Each client, back to back:
  35% GET /incoming/<name>      (the body is hashed: it must match its name)
  25% GET /processed/<name>     (hashed too)
  10% GET with If-None-Match    (304)
  30% POST /processed           (images never converted first, then repeats)
Any answer other than 2xx/304, a broken connection or a body that does not hash to its
name is an error; the script exits 1 if there is one. The gunicorn RSS (master + workers,
from /proc) is sampled every 5 s. The clients share the machine's cores with the servers.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    HarnessError,
    Load,
    Mix,
    Outcome,
    Stack,
    make_images,
    percentile,
    stack,
    statuses,
)

MIX = {"get_incoming": 35, "get_processed": 25, "get_cached": 10, "process": 30}
PRECONVERTED = 16
RSS_EVERY_SECONDS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--images", type=int, default=300, help="distinct images seeded")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn WEB_CONCURRENCY")
    args = parser.parse_args()
    if args.duration <= 0 or args.clients < 1 or args.images < PRECONVERTED:
        parser.error(f"--duration and --clients must be positive, --images {PRECONVERTED} or more")

    print(f"making {args.images} images ...", flush=True)
    images = make_images(args.images)
    try:
        with stack(images, workers=args.workers, clients=args.clients) as running:
            errors = run(running, args)
    except HarnessError as error:
        sys.exit(f"error: {error}")
    sys.exit(1 if errors else 0)


def run(running: Stack, args: argparse.Namespace) -> int:
    """Seed, load, report; the number of errors."""
    print(f"seeding {args.images} images through POST /incoming ...", flush=True)
    incoming = running.seed(list(running.images), args.clients)
    mix = Mix(weights=MIX)
    for path in incoming:
        mix.learn(path)
    for path in incoming[:PRECONVERTED]:
        answer = running.http.request("POST", f"{running.base}/processed", json={"path": path})
        if answer.status != 201:
            raise HarnessError(f"converting {path} answered {answer.status}")
        mix.unconverted.remove(path)
        mix.learn(answer.json()["path"])

    load = Load(running, mix, args.clients)
    rss_start, workers = running.gunicorn.rss()
    samples = [(0.0, rss_start)]
    load.set_phase("load")
    started = time.monotonic()
    load.start(hard_limit_seconds=args.duration + 120)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(RSS_EVERY_SECONDS):
            samples.append((time.monotonic() - started, running.gunicorn.rss()[0]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(args.duration)
    load.stop()
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join()
    rss_end, workers_end = running.gunicorn.rss()
    samples.append((elapsed, rss_end))
    return report(load, args, elapsed, (rss_start, workers), (rss_end, workers_end), samples)


def report(
    load: Load,
    args: argparse.Namespace,
    elapsed: float,
    rss_start: tuple[int, int],
    rss_end: tuple[int, int],
    samples: list[tuple[float, int]],
) -> int:
    outcomes = load.outcomes
    errors = [o for o in outcomes if _is_error(o)]
    print(
        f"\nmachine: {os.cpu_count()} CPUs, shared by moto, gunicorn, the origin, the clients "
        "and whatever else runs: figures are noisy"
    )
    print(
        f"gunicorn: {args.workers} workers x 4 threads (gthread); {args.clients} clients; "
        f"{args.images} distinct 800x600 JPEGs seeded; {elapsed:.1f} s of load"
    )
    print(f"\n{'operation':<15}{'answers':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for op in [*MIX, "all"]:
        chosen = [o for o in outcomes if op in (o.op, "all")]
        latencies = [o.done - o.sent for o in chosen]
        print(
            f"{op:<15}{len(chosen):>9}{len(chosen) / elapsed:>9.1f}"
            f"{percentile(latencies, 50) * 1000:>9.1f}{percentile(latencies, 99) * 1000:>9.1f}"
            f"{sum(_is_error(o) for o in chosen):>8}"
        )
    print(f"\nstatuses: {statuses(outcomes)}")
    print(
        f"POST /processed: {load.mix.fresh_conversions} real conversions, the rest repeats of stored results"
    )
    print(f"errors: {len(errors)}")
    for outcome in errors[:10]:
        print(f"  {outcome.op} {outcome.status} {outcome.detail or 'body does not match its name'}")
    mib = 1024 * 1024
    print(
        f"\ngunicorn RSS (master + workers): start {rss_start[0] / mib:.1f} MiB "
        f"({rss_start[1]} workers), end {rss_end[0] / mib:.1f} MiB ({rss_end[1]} workers), "
        f"change {(rss_end[0] - rss_start[0]) / mib:+.1f} MiB"
    )
    print("  samples: " + ", ".join(f"{t:.0f}s {rss / mib:.1f}" for t, rss in samples))
    return len(errors)


def _is_error(outcome: Outcome) -> bool:
    return outcome.status not in (200, 201, 304) or not outcome.intact


if __name__ == "__main__":
    main()
