"""The API as the container runs it (`python -m service.serve`, real gevent workers) for tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import urllib3

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    """A running `python -m service.serve` on loopback and its stderr log."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    http: urllib3.PoolManager

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, **kwargs: object) -> urllib3.BaseHTTPResponse:
        return self.http.request(method, self.base + path, **kwargs)  # type: ignore[arg-type]

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def log_lines(self) -> list[dict[str, object]]:
        lines = []
        for line in self.log.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"raw": line})
        return lines


def clean_env(**settings: str) -> dict[str, str]:
    prefixes = ("MINIO_", "MAX_", "FETCH_", "STORAGE_", "WEB_", "PROMETHEUS", "MEMORY_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(prefixes)}
    env.update(settings)
    return env


@contextmanager
def served(settings: Mapping[str, str], work: Path) -> Iterator[Served]:
    """Start the container command with `settings`, wait for /readyz, stop it afterwards."""
    port = free_port()
    metrics = work / "metrics"
    metrics.mkdir(exist_ok=True)
    log = work / "serve.log"
    env = clean_env(PROMETHEUS_MULTIPROC_DIR=str(metrics), **settings)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.serve", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=60))
    running = Served(port, process, log, http)
    try:
        _wait_ready(running)
        yield running
    finally:
        close_connections(http)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def close_connections(http: urllib3.PoolManager) -> None:
    """Close the client's kept-alive connections, which would otherwise hold each worker's
    graceful stop for their idle deadline (urllib3 2's `clear()` leaves them open)."""
    for key in http.pools.keys():  # noqa: SIM118 - the container refuses iteration
        http.pools[key].close()
    http.clear()


def _wait_ready(running: Served) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert running.process.poll() is None, running.log.read_text()[-2000:]
        try:
            if running.request("GET", "/readyz").status == 200:
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the API did not become ready")


def timed_get(running: Served, path: str) -> tuple[int, float]:
    """Status and seconds of one GET on a fresh connection."""
    started = time.monotonic()
    answer = running.http.request(
        "GET", running.base + path, timeout=urllib3.Timeout(connect=10, read=10)
    )
    return answer.status, time.monotonic() - started


def rss_peak(pid: int) -> int:
    """The high-water mark of a process's resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise LookupError(pid)


def rss_now(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(pid)


class PeakSampler:
    """The largest sum of the processes' resident sizes, sampled every 10 ms on a thread.

    This is what a pod's memory limit counts (summed VmHWM would add peaks that happened
    at different times); a spike shorter than the interval can slip through.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            total = 0
            for pid in self.pids:
                with contextlib.suppress(OSError, LookupError):
                    total += rss_now(pid)
            self.peak = max(self.peak, total)
