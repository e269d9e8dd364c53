"""Serving stacks side by side: plain load, slow clients, slow origins, and the worker split.

Run: .venv/bin/python bench/serving.py [--seconds 8] [--attackers 200] [--stacks gevent,gthread]
     .venv/bin/python bench/serving.py --memory

Each stack serves the same app (2 workers) against moto's S3 server and a local origin, all
on 127.0.0.1, started and stopped here, one stack at a time; the stacks' order rotates each
round. Stacks:
  gevent  - what the container runs: gunicorn, service.gunicorn_worker (gevent), SO_REUSEPORT
  gevent-shared - the same, but the workers share one listening socket
  gthread - the stack before: gunicorn gthread, 4 threads per worker, one shared socket
  granian - granian's WSGI interface, 4 blocking threads per worker (only where installed)
Scenarios (all but the first with 4 probe clients sending GET /healthz and GET /processed/<name>):
  split        - 16 clients x 26 GETs on new connections: requests per worker
  plain        - 8 clients converting and reading: requests/s, probe latency, worker split
  slow-clients - while N connections drip headers, N drip bodies and N idle keep-alive
  slow-origin  - while 50 POST /incoming wait on an origin that never answers
--per-pixel: the peak memory of one conversion per pixel, by format (admission's costs).
--memory: the largest image of each kind the dev stack admits (bench/largest.py), two of
each converted at once under the gevent stack with the dev stack's settings: the peak of
the processes' summed RSS, each worker's peak, and its RSS after.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    ACCESS_KEY,
    BIN,
    ROOT,
    SECRET_KEY,
    HarnessError,
    Moto,
    _parent_pid,
    free_port,
    make_images,
    origin,
    percentile,
    process,
    rss_bytes,
    wait_until,
)
from service.settings import FetchSettings, ServingSettings, StorageSettings, env_pairs

WORKERS = 2
PROBES = 4
LOADERS = 8
HANGING_UPLOADS = 50
PROBE_TIMEOUT = 10.0

GTHREAD_CONF = """\
from service.gunicorn_conf import *  # noqa: F403 (the same settings, but the stack before)
worker_class = "gthread"
threads = 4
reuse_port = False
keepalive = 5
"""
GEVENT_SHARED_CONF = """\
from service.gunicorn_conf import *  # noqa: F403 (the container's settings, one shared socket)
reuse_port = False
"""
GRANIAN_APP = "from service.app import create_app\napp = create_app()\n"


@dataclass
class Probe:
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        values = self.latencies
        failed = sum(self.failures.values())
        text = (
            f"{len(values) + failed:5d} probes  p50 {percentile(values, 50) * 1000:7.1f} ms  "
            f"p99 {percentile(values, 99) * 1000:7.1f} ms  max {max(values, default=0) * 1000:7.1f} ms"
        )
        if failed:
            text += f"  FAILED {failed} ({', '.join(f'{k} {v}' for k, v in self.failures.items())})"
        return text


def command(stack: str, port: int, work: Path) -> list[str]:
    if stack == "granian":
        (work / "granian_app.py").write_text(GRANIAN_APP)
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
            "--blocking-threads",
            "4",
            "--http",
            "1",
            "--http1-header-read-timeout",
            "5000",
            "granian_app:app",
        ]
    config = "python:service.gunicorn_conf"
    variants = {"gthread": GTHREAD_CONF, "gevent-shared": GEVENT_SHARED_CONF}
    if stack in variants:
        path = work / f"{stack}_conf.py"
        path.write_text(variants[stack])
        config = str(path)
    return [
        str(BIN / "gunicorn"),
        "--config",
        config,
        "--bind",
        f"127.0.0.1:{port}",
        "service.app:create_app()",
    ]


@contextlib.contextmanager
def running(stack: str, moto: Moto, work: Path, **extra: str) -> Iterator[tuple[str, Path, int]]:
    """The stack serving on a free port: (base URL, log file, master pid)."""
    port = free_port()
    metrics = Path(tempfile.mkdtemp(prefix="metrics-", dir=work))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS")},
        "PYTHONPATH": f"{work}:{ROOT}",
        **dict(
            env_pairs(
                StorageSettings(
                    endpoint=moto.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY
                ),
                "endpoint",
                "access_key",
                "secret_key",
            )
        ),
        **dict(
            env_pairs(
                FetchSettings(allow_private_networks=True, timeout_seconds=5),
                "allow_private_networks",
                "timeout_seconds",
            )
        ),
        **dict(
            env_pairs(
                ServingSettings(web_concurrency=WORKERS, prometheus_multiproc_dir=str(metrics)),
                "web_concurrency",
                "prometheus_multiproc_dir",
                "malloc_arena_max",
            )
        ),
        **extra,
    }
    log = work / f"{stack}-{port}.log"
    with process(command(stack, port, work), env, log) as child:
        base = f"http://127.0.0.1:{port}"
        http = urllib3.PoolManager(retries=False, timeout=5)
        wait_until(lambda: http.request("GET", base + "/readyz").status == 200, 60, stack)
        yield base, log, child.pid


def probe(base: str, paths: list[str], seconds: float) -> Probe:
    """PROBES clients, each on fresh connections, alternating the paths until time is up."""
    result = Probe()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(number: int) -> None:
        http = urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(connect=PROBE_TIMEOUT, read=PROBE_TIMEOUT)
        )
        turn = number
        while time.monotonic() < deadline:
            path = paths[turn % len(paths)]
            turn += 1
            started = time.perf_counter()
            try:
                status = http.request("GET", base + path).status
            except urllib3.exceptions.HTTPError as error:
                with lock:
                    result.failures[type(error).__name__] += 1
                continue
            with lock:
                if status == 200:
                    result.latencies.append(time.perf_counter() - started)
                else:
                    result.failures[str(status)] += 1
            time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(PROBES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def seed(base: str, origin_port: int, names: list[str]) -> list[str]:
    http = urllib3.PoolManager(retries=False, timeout=30)
    processed = []
    for name in names:
        url = f"http://127.0.0.1:{origin_port}/{name}"
        answer = http.request("POST", base + "/incoming", json={"url": url})
        if answer.status != 201:
            raise HarnessError(f"seeding {name}: {answer.status} {answer.data[:200]!r}")
        converted = http.request("POST", base + "/processed", json={"path": answer.json()["path"]})
        processed.append(converted.json()["path"])
    return processed


def requests_per_pid(log: Path, master: int) -> Counter[int]:
    """Requests answered by each worker so far, from the JSON access lines (with their pid)."""
    counted: Counter[int] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("logger") == "service.access" and entry.get("pid") != master:
                counted[entry.get("pid", 0)] += 1
    return counted


def split(counted: Counter[int]) -> str:
    total = sum(counted.values()) or 1
    shares = sorted((count * 100 / total for count in counted.values()), reverse=True)
    return " / ".join(f"{share:.0f}%" for share in shares) + f" of {total}"


def fresh_connections(base: str, path: str, clients: int = 16, each: int = 26) -> None:
    """16 clients x 26 GETs, each on a new connection: how a worker split shows plainly."""

    def client() -> None:
        http = urllib3.PoolManager(retries=False, timeout=30, maxsize=1)
        for _ in range(each):
            with contextlib.suppress(urllib3.exceptions.HTTPError):
                http.request("GET", base + path, headers={"Connection": "close"})

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def plain(
    base: str, uploads: list[str], processed: list[str], seconds: float
) -> tuple[float, Probe]:
    """LOADERS clients: a third convert (fresh or stored), the rest read; plus the probes."""
    done = Probe()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    rng = random.Random(7)

    def loader() -> None:
        http = urllib3.PoolManager(retries=False, timeout=30)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                if rng.random() < 0.33:
                    answer = http.request(
                        "POST", base + "/processed", json={"path": rng.choice(uploads)}
                    )
                else:
                    answer = http.request("GET", base + rng.choice(processed))
            except urllib3.exceptions.HTTPError as error:
                with lock:
                    done.failures[type(error).__name__] += 1
                continue
            with lock:
                if answer.status in (200, 201):
                    done.latencies.append(time.perf_counter() - started)
                else:
                    done.failures[str(answer.status)] += 1

    threads = [threading.Thread(target=loader) for _ in range(LOADERS)]
    for thread in threads:
        thread.start()
    probes = probe(base, ["/healthz", processed[0]], seconds)
    for thread in threads:
        thread.join()
    return len(done.latencies) / seconds, probes


def slow_clients(
    base: str, processed: list[str], attackers: int, seconds: float
) -> tuple[Probe, int]:
    """Probes while `attackers` connections each drip headers, drip bodies, or idle."""
    port = int(base.rsplit(":", 1)[1])
    dripping: list[socket.socket] = []
    idle: list[socket.socket] = []
    refused = 0
    for _ in range(attackers):
        try:
            head = socket.create_connection(("127.0.0.1", port), timeout=5)
            head.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            body = socket.create_connection(("127.0.0.1", port), timeout=5)
            body.sendall(
                b"POST /processed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 60000\r\n\r\n{"
            )
            dripping += [head, body]
            kept = socket.create_connection(("127.0.0.1", port), timeout=5)
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            idle.append(kept)
        except OSError:
            refused += 1
    for sock in dripping:
        sock.setblocking(False)
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.5):
            for sock in dripping:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        result = probe(base, ["/healthz", processed[0]], seconds)
    finally:
        stop.set()
        dripper.join()
        for sock in dripping + idle:
            sock.close()
    return result, refused


def slow_origin(
    base: str, origin_port: int, uploads: list[str], processed: list[str], seconds: float
) -> tuple[Probe, Counter[str]]:
    """Probes (and stored conversions) while 50 uploads wait on an origin that never answers."""
    answers: Counter[str] = Counter()
    lock = threading.Lock()

    def upload() -> None:
        http = urllib3.PoolManager(retries=False, timeout=60)
        started = time.perf_counter()
        try:
            status = str(
                http.request(
                    "POST", base + "/incoming", json={"url": f"http://127.0.0.1:{origin_port}/hang"}
                ).status
            )
        except urllib3.exceptions.HTTPError as error:
            status = type(error).__name__
        took = time.perf_counter() - started
        with lock:
            answers[f"{status} in {'<1 s' if took < 1 else '>=1 s'}"] += 1

    threads = [threading.Thread(target=upload, daemon=True) for _ in range(HANGING_UPLOADS)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    result = probe(base, ["/healthz", processed[0], "/readyz"], seconds)
    for thread in threads:
        thread.join(timeout=30)
    return result, answers


def compare(stacks: list[str], seconds: float, attackers: int, rounds: int) -> None:
    images = make_images(40)
    names = sorted(images)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        moto = Moto(work)
        moto.start()
        try:
            for number in range(rounds):
                order = stacks if number % 2 == 0 else list(reversed(stacks))
                for stack in order:
                    with (
                        origin(images) as origin_port,
                        running(stack, moto, work) as (base, log, master),
                    ):
                        uploads_processed = seed(base, origin_port, names[:4])
                        http = urllib3.PoolManager(retries=False, timeout=30)
                        uploads = [
                            http.request(
                                "POST",
                                base + "/incoming",
                                json={"url": f"http://127.0.0.1:{origin_port}/{n}"},
                            ).json()["path"]
                            for n in names[4:]
                        ]
                        before = requests_per_pid(log, master)
                        fresh_connections(base, uploads_processed[0])
                        fresh = requests_per_pid(log, master) - before
                        before = requests_per_pid(log, master)
                        rate, plain_probe = plain(base, uploads, uploads_processed, seconds)
                        kept = requests_per_pid(log, master) - before
                        clients_probe, refused = slow_clients(
                            base, uploads_processed, attackers, seconds
                        )
                        origin_probe, answers = slow_origin(
                            base, origin_port, uploads, uploads_processed, seconds
                        )
                    print(f"== {stack} (round {number + 1}, load {os.getloadavg()[0]:.2f})")
                    print(
                        f"  worker split: new connections {split(fresh)}; plain load {split(kept)}"
                    )
                    print(f"  plain        {rate:6.1f} loader requests/s")
                    print(f"               {plain_probe.line()}")
                    print(
                        f"  slow-clients {clients_probe.line()}  (attacker connects refused: {refused})"
                    )
                    print(f"  slow-origin  {origin_probe.line()}")
                    print(f"               uploads to the hanging origin: {dict(answers)}")
                    sys.stdout.flush()
        finally:
            moto.stop()


def memory() -> None:
    """The dev stack's largest image of each kind, two at a time, under its memory limit."""
    from bench.largest import KINDS, largest_admitted
    from service.settings import conversion_budget

    # The dev stack's: the settings' defaults, which its pods keep (512Mi, 50 MP, 20 MiB).
    serving, fetch = ServingSettings(), FetchSettings()
    limit, max_pixels, max_download = (
        serving.memory_limit_bytes,
        fetch.max_image_pixels,
        fetch.max_download_bytes,
    )
    budget = conversion_budget(serving, WORKERS)
    images = {
        f"{kind.replace(' ', '_')}-{seed}": largest_admitted(
            kind, budget, max_pixels, max_download, seed
        )
        for kind in KINDS
        for seed in (0, 1)
    }
    mib = 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        moto = Moto(work)
        moto.start()
        try:
            with (
                origin(images) as origin_port,
                running(
                    "gevent",
                    moto,
                    work,
                    MEMORY_LIMIT_BYTES=str(limit),
                    MAX_IMAGE_PIXELS=str(max_pixels),
                    MAX_DOWNLOAD_BYTES=str(max_download),
                ) as (base, _log, master),
            ):
                http = urllib3.PoolManager(retries=False, timeout=120)
                paths: dict[str, list[str]] = {kind: [] for kind in KINDS}
                for name in images:
                    answer = http.request(
                        "POST",
                        base + "/incoming",
                        json={"url": f"http://127.0.0.1:{origin_port}/{name}"},
                    )
                    if answer.status != 201:
                        raise HarnessError(f"{name}: {answer.status} {answer.data[:200]!r}")
                    paths[name.rsplit("-", 1)[0].replace("_", " ")].append(answer.json()["path"])
                workers = _children(master)
                before = {pid: rss_bytes(pid) for pid in workers}
                print(
                    f"dev stack: {limit / mib:.0f} MiB limit, {WORKERS} workers, conversion "
                    f"budget {budget / mib:.0f} MiB, MAX_IMAGE_PIXELS {max_pixels}, "
                    f"MAX_DOWNLOAD_BYTES {max_download}"
                )
                for kind in KINDS:
                    sizes = [len(images[f"{kind.replace(' ', '_')}-{seed}"]) for seed in (0, 1)]
                    statuses: Counter[int] = Counter()
                    sampled = [0]
                    stop = threading.Event()

                    def sample(stop: threading.Event = stop, sampled: list[int] = sampled) -> None:
                        while not stop.wait(0.01):
                            total = sum(rss_bytes(pid) for pid in [master, *workers])
                            sampled[0] = max(sampled[0], total)

                    def convert(path: str, statuses: Counter[int] = statuses) -> None:
                        answer = http.request("POST", base + "/processed", json={"path": path})
                        statuses.update([answer.status])

                    sampler = threading.Thread(target=sample)
                    sampler.start()
                    started = time.perf_counter()
                    threads = [threading.Thread(target=convert, args=(p,)) for p in paths[kind]]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    took = time.perf_counter() - started
                    stop.set()
                    sampler.join()
                    from PIL import Image

                    with Image.open(io.BytesIO(images[f"{kind.replace(' ', '_')}-0"])) as first:
                        megapixels = first.width * first.height / 1e6
                    print(
                        f"{kind:<14} {megapixels:5.1f} MP, files {sizes[0] / mib:.1f} and "
                        f"{sizes[1] / mib:.1f} MiB: 2 at once {dict(statuses)} in {took:.1f} s, "
                        f"peak of master + workers RSS {sampled[0] / mib:.0f} MiB"
                    )
                    sys.stdout.flush()
                after = {pid: rss_bytes(pid) for pid in workers}
                for pid in workers:
                    print(
                        f"worker {pid}: {before[pid] / mib:.0f} MiB before, peak "
                        f"{_hwm(pid) / mib:.0f} MiB, {after[pid] / mib:.0f} MiB after"
                    )
        finally:
            moto.stop()


def _children(pid: int) -> list[int]:
    return sorted(
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and _parent_pid(int(e.name)) == pid
    )


def _hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# (label, format, mode, save options): random pixels, the worst case for every encoder.
PER_PIXEL_CASES: list[tuple[str, str, str, dict[str, object]]] = [
    ("PNG RGB", "PNG", "RGB", {"compress_level": 1}),
    ("PNG RGBA", "PNG", "RGBA", {"compress_level": 1}),
    ("PNG L", "PNG", "L", {"compress_level": 1}),
    ("PNG palette", "PNG", "P", {"compress_level": 1}),
    ("JPEG", "JPEG", "RGB", {}),
    ("WEBP lossy", "WEBP", "RGB", {"quality": 80}),
    ("WEBP lossless", "WEBP", "RGB", {"lossless": True, "method": 0, "quality": 0}),
    ("GIF", "GIF", "RGB", {}),
]
PER_PIXEL_SIDES = (3000, 4899)  # 9 MP and 24 MP
PER_PIXEL_CHILD = """
import io, os, sys
from service import imaging
data = open(sys.argv[1], "rb").read()
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
resting = status("VmRSS:")
imaging.greyscale(io.BytesIO(data), 10**9)
print((status("VmHWM:") - resting) / int(sys.argv[2]))
"""


def per_pixel(sides: tuple[int, ...] = PER_PIXEL_SIDES, only: str = "") -> None:
    """Peak resident growth per pixel of one conversion, random pixels, each in a fresh process.

    The child only reads the encoded file and converts it, so nothing freed before the
    conversion hides its growth. It runs as the pod's processes do (MALLOC_ARENA_MAX=2).
    """
    import subprocess

    from PIL import Image

    from service.limits import BYTES_PER_PIXEL

    env = {**os.environ, **dict(env_pairs(ServingSettings(), "malloc_arena_max"))}
    print("format, side: peak bytes per pixel (the admission's cost per pixel)")
    with tempfile.TemporaryDirectory(prefix="bench-pixels-") as tmp:
        for side in sides:
            rgb = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
            for label, fmt, mode, options in PER_PIXEL_CASES:
                if only and only not in label:
                    continue
                image = rgb.convert(mode) if mode != "P" else rgb.quantize(256)
                path = Path(tmp) / f"image.{fmt.lower()}"
                image.save(path, fmt, **options)
                done = subprocess.run(
                    [sys.executable, "-c", PER_PIXEL_CHILD, str(path), str(side * side)],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                kind = "WEBP lossless" if options.get("lossless") else fmt
                print(
                    f"{label:<14} {side}x{side}: {float(done.stdout):5.1f} bytes per pixel at peak "
                    f"(cost {BYTES_PER_PIXEL[kind]})"
                )
                sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--attackers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--stacks", default="gevent,gthread,granian")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--per-pixel", action="store_true")
    parser.add_argument("--only", default="", help="--per-pixel: only the cases named so")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.memory:
        memory()
        return
    if args.per_pixel:
        per_pixel(only=args.only)
        return
    stacks = []
    for stack in args.stacks.split(","):
        if stack == "granian" and importlib.util.find_spec("granian") is None:
            print(
                "granian: not installed here, left out (pip install granian==2.8.7 to include it)"
            )
            continue
        stacks.append(stack)
    compare(stacks, args.seconds, args.attackers, args.rounds)


if __name__ == "__main__":
    main()
