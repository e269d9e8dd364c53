"""The API on loopback, as deployed: moto's S3 server, gunicorn, an origin, and concurrent clients.

Shared by bench/api_throughput.py, bench/load.py, bench/faults.py and the fault test. Every
server listens on 127.0.0.1 only, is started here and is stopped here; every loop is bounded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import urllib3
from minio import Minio
from minio.error import S3Error
from PIL import Image, ImageDraw

from service.settings import FetchSettings, ServingSettings, StorageSettings, env_pairs
from service.storage import close_response

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# A hanging origin holds its request at most this long, so that no thread outlives a run.
HANG_LIMIT_SECONDS = 120.0
ACCESS_KEY = "bench"
SECRET_KEY = "bench-secret"  # moto accepts any key; this one only signs loopback requests


class HarnessError(RuntimeError):
    """A server of the harness did not start, or misbehaved in a way that stops the run."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll `ready` until it is true; the seconds it took. HarnessError when time runs out."""
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        try:
            if ready():
                return time.monotonic() - started
        except (OSError, urllib3.exceptions.HTTPError):
            pass
        time.sleep(0.05)
    raise HarnessError(f"{what} did not happen within {seconds:g}s")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _OriginServer(ThreadingHTTPServer):
    daemon_threads = True
    images: Mapping[str, bytes]
    release: threading.Event


class _OriginHandler(BaseHTTPRequestHandler):
    server: _OriginServer

    def do_GET(self) -> None:
        if self.path == "/hang":
            # Read the request, then never answer: the API must give up by itself.
            self.server.release.wait(HANG_LIMIT_SECONDS)
            self.close_connection = True
            return
        body = self.server.images.get(self.path.lstrip("/"))
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


@contextmanager
def origin(images: Mapping[str, bytes]) -> Iterator[int]:
    """A site to download from, on loopback; `/hang` never answers. Yields its port."""
    server = _OriginServer(("127.0.0.1", 0), _OriginHandler)
    server.images = images
    server.release = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


@contextmanager
def process(
    command: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the duration of the block, stopped with SIGTERM (SIGKILL if stuck)."""
    with log.open("w") as output:
        child = subprocess.Popen(command, cwd=ROOT, env=dict(env), stdout=output, stderr=output)
    try:
        yield child
    finally:
        _terminate(child)


def _terminate(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=10)


class Moto:
    """moto's standalone S3 server on a fixed loopback port, which it keeps across restarts.

    moto keeps objects in memory only: a restarted moto is empty. That loss is moto's, not
    the API's; MinIO keeps its objects on disk.
    """

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.work = work
        self.child: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start it and wait until it accepts connections; the seconds that took."""
        self.starts += 1
        log = (self.work / f"moto-{self.starts}.log").open("w")
        with log:
            self.child = subprocess.Popen(
                [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        return wait_until(lambda: listening(self.port), 30, "moto listening")

    def stop(self) -> None:
        if self.child is not None:
            _terminate(self.child)
            self.child = None

    def pause(self) -> None:
        assert self.child is not None
        self.child.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.child is not None
        self.child.send_signal(signal.SIGCONT)

    def client(self) -> Minio:
        """A client that reads the buckets directly, bypassing the API."""
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=30), retries=False)
        return Minio(
            endpoint=self.endpoint,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            secure=False,
            http_client=http,
        )


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def rss_bytes(pid: int) -> int:
    """Resident set size of one process, from /proc (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Gunicorn:
    """The API as the container runs it: gunicorn with its config, real worker processes."""

    def __init__(self, env: Mapping[str, str], work: Path) -> None:
        self.port = free_port()
        self.env = env
        self.log = work / "gunicorn.log"
        self.child: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextmanager
    def running(self) -> Iterator[None]:
        command = [
            str(BIN / "gunicorn"),
            "--config",
            "python:service.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{self.port}",
            "service.app:create_app()",
        ]
        with process(command, self.env, self.log) as child:
            self.child = child
            try:
                yield
            finally:
                self.child = None

    @property
    def master(self) -> int:
        assert self.child is not None
        return self.child.pid

    def workers(self) -> list[int]:
        """Worker pids: the master's children, found by scanning /proc."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _parent_pid(int(entry.name)) == self.master:
                found.append(int(entry.name))
        return sorted(found)

    def rss(self) -> tuple[int, int]:
        """(master + workers RSS in bytes, number of workers counted)."""
        workers = self.workers()
        return rss_bytes(self.master) + sum(map(rss_bytes, workers)), len(workers)

    def kill_worker(self) -> int:
        """SIGKILL one worker, as the OOM killer would; the master starts another. Its pid."""
        victim = self.workers()[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    def log_lines(self, needle: str) -> list[str]:
        return [
            line for line in self.log.read_text(errors="replace").splitlines() if needle in line
        ]


def api_env(s3: Moto, workers: int, **extra: str) -> dict[str, str]:
    """The process environment plus the API's storage settings that point at this harness."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS")}
    storage = StorageSettings(endpoint=s3.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    return {
        **base,
        **dict(env_pairs(storage, "endpoint", "access_key", "secret_key")),
        # the origin is on loopback
        **dict(env_pairs(FetchSettings(allow_private_networks=True), "allow_private_networks")),
        **dict(env_pairs(ServingSettings(web_concurrency=workers), "web_concurrency")),
        **extra,
    }


@dataclass
class Stack:
    """Origin, moto and gunicorn, running; made by `stack()`."""

    moto: Moto
    gunicorn: Gunicorn
    origin_port: int
    images: Mapping[str, bytes]
    work: Path
    http: urllib3.PoolManager
    keep_logs: bool = False  # set it to keep `work` (the servers' logs) after the run

    @property
    def base(self) -> str:
        return self.gunicorn.base

    def origin_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.origin_port}/{name}"

    def ready(self) -> bool:
        return self.http.request("GET", f"{self.base}/readyz", retries=False).status == 200

    def seed(self, names: list[str], threads: int) -> list[str]:
        """POST /incoming every named origin image, from `threads` clients; the stored paths."""
        todo = queue.SimpleQueue[str]()
        for name in names:
            todo.put(name)
        done = queue.SimpleQueue[str]()
        failures: list[str] = []

        def seeder() -> None:
            while not failures:
                try:
                    name = todo.get_nowait()
                except queue.Empty:
                    return
                url = self.origin_url(name)
                answer = self.http.request("POST", f"{self.base}/incoming", json={"url": url})
                if answer.status != 201:
                    failures.append(
                        f"seeding {name} answered {answer.status}: {answer.data[:200]!r}"
                    )
                    return
                done.put(answer.json()["path"])

        workers = [threading.Thread(target=seeder) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise HarnessError(failures[0])
        return [done.get() for _ in range(done.qsize())]


@contextmanager
def stack(
    images: Mapping[str, bytes], workers: int = 2, clients: int = 8, **settings: str
) -> Iterator[Stack]:
    """Start origin, moto and gunicorn on loopback, wait for /readyz, and stop them after.

    Their logs go to a temporary directory, removed afterwards unless the run failed or
    asked to keep it.
    """
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    moto = Moto(work)
    gunicorn = Gunicorn(api_env(moto, workers, **settings), work)
    http = urllib3.PoolManager(maxsize=clients, timeout=urllib3.Timeout(connect=5, read=120))
    keep = True
    try:
        moto.start()
        with origin(images) as origin_port, gunicorn.running():
            running = Stack(moto, gunicorn, origin_port, images, work, http)
            wait_until(running.ready, 60, "the API answering /readyz")
            yield running
            keep = running.keep_logs
    finally:
        moto.stop()
        if keep:
            print(f"logs of moto and gunicorn kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


# The load: concurrent clients that record every answer.

RESET = 0  # the status recorded when the connection broke before an answer came


@dataclass(frozen=True)
class Outcome:
    """One request: what was asked, in which phase, and what came back."""

    op: str
    phase: str  # when it was sent
    phase_done: str  # when it came back
    status: int  # RESET when no answer came
    sent: float  # time.monotonic()
    done: float
    detail: str = ""  # the error message, or why the connection broke
    created: str = ""  # the path of a 201
    json_error: bool = True  # an error answer was JSON with a non-empty "error"
    intact: bool = True  # a 200 image body hashes to its name


@dataclass
class Mix:
    """What the clients ask for: weights per operation, and the paths they know of."""

    weights: Mapping[str, float]
    origin_names: list[str] = field(default_factory=list)
    incoming: list[str] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    unconverted: list[str] = field(default_factory=list)
    fresh_conversions: int = 0  # POST /processed sent for an image never converted before
    lock: threading.Lock = field(default_factory=threading.Lock)

    def forget(self) -> None:
        """Drop every known path: storage came back empty."""
        with self.lock:
            self.incoming.clear()
            self.processed.clear()
            self.unconverted.clear()

    def learn(self, path: str) -> None:
        with self.lock:
            if path.startswith("/incoming/") and path not in self.incoming:
                self.incoming.append(path)
                self.unconverted.append(path)
            elif path.startswith("/processed/") and path not in self.processed:
                self.processed.append(path)

    def pick(self, rng: random.Random) -> tuple[str, str]:
        """An operation and its argument (a path or an origin image name)."""
        ops = list(self.weights)
        op = rng.choices(ops, weights=[self.weights[o] for o in ops])[0]
        with self.lock:
            if op in ("get_processed", "get_cached") and not self.processed:
                op = "process"
            if op != "upload" and not self.incoming:
                op = "upload"
            if op == "upload":
                return op, rng.choice(self.origin_names) if self.origin_names else ""
            if op == "process":
                # Images never converted first, so that conversions are real work.
                if self.unconverted:
                    self.fresh_conversions += 1
                    return op, self.unconverted.pop(rng.randrange(len(self.unconverted)))
                return op, rng.choice(self.incoming)
            if op == "get_incoming":
                return op, rng.choice(self.incoming)
            return op, rng.choice(self.processed)


class Load:
    """`clients` threads sending requests back to back until stopped, recording every answer."""

    def __init__(self, target: Stack, mix: Mix, clients: int, seed: int = 1) -> None:
        self.target = target
        self.mix = mix
        self.clients = clients
        self.seed = seed
        self.phase = "start"
        self.phase_started: list[tuple[str, float]] = []
        self.hang_clients = 0  # clients numbered below this POST an origin that never answers
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http = urllib3.PoolManager(
            maxsize=clients, retries=False, timeout=urllib3.Timeout(connect=5, read=60)
        )

    def set_phase(self, name: str) -> None:
        self.phase = name
        self.phase_started.append((name, time.monotonic()))

    def start(self, hard_limit_seconds: float) -> None:
        deadline = time.monotonic() + hard_limit_seconds
        for number in range(self.clients):
            thread = threading.Thread(target=self._client, args=(number, deadline), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)
        if any(thread.is_alive() for thread in self._threads):
            raise HarnessError("a load client did not finish within 90s")

    def _client(self, number: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + number)
        while not self._stop.is_set() and time.monotonic() < deadline:
            if number < self.hang_clients:
                op, argument = "hang", ""
            else:
                op, argument = self.mix.pick(rng)
            outcome = self._send(op, argument)
            with self._lock:
                self.outcomes.append(outcome)
            if outcome.created:
                self.mix.learn(outcome.created)
            if not 200 <= outcome.status < 400:
                time.sleep(0.05)  # no tighter loop than a real client's against a failing API

    def _send(self, op: str, argument: str) -> Outcome:
        base = self.target.base
        headers: dict[str, str] = {}
        if op == "hang":
            method, url, body = (
                "POST",
                f"{base}/incoming",
                {"url": f"{self.target.origin_url('hang')}"},
            )
        elif op == "upload":
            method, url, body = (
                "POST",
                f"{base}/incoming",
                {"url": self.target.origin_url(argument)},
            )
        elif op == "process":
            method, url, body = "POST", f"{base}/processed", {"path": argument}
        else:
            method, url, body = "GET", base + argument, None
            if op == "get_cached":
                headers["If-None-Match"] = f'"{argument.rsplit("/", 1)[1]}"'
        phase, sent = self.phase, time.monotonic()
        try:
            answer = self._http.request(method, url, json=body, headers=headers)
        except urllib3.exceptions.HTTPError as error:
            return Outcome(op, phase, self.phase, RESET, sent, time.monotonic(), _why(error))
        done = time.monotonic()
        if answer.status == 201:
            created = str(answer.json().get("path", ""))
            return Outcome(op, phase, self.phase, 201, sent, done, created=created)
        if answer.status == 200 and method == "GET":
            intact = sha256(answer.data) == argument.rsplit("/", 1)[1]
            return Outcome(op, phase, self.phase, 200, sent, done, intact=intact)
        if answer.status < 400:
            return Outcome(op, phase, self.phase, answer.status, sent, done)
        message, is_json = _error_message(answer)
        return Outcome(
            op, phase, self.phase, answer.status, sent, done, message, json_error=is_json
        )


def _error_message(answer: urllib3.BaseHTTPResponse) -> tuple[str, bool]:
    try:
        body = json.loads(answer.data)
    except ValueError:
        return answer.data[:120].decode(errors="replace"), False
    message = body.get("error") if isinstance(body, dict) else None
    content_type = answer.headers.get("Content-Type", "")
    if not isinstance(message, str) or not message or content_type != "application/json":
        return str(body)[:120], False
    return message, True


def _why(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or (error.args[1] if len(error.args) > 1 else "")
    kind = "timeout" if isinstance(error, urllib3.exceptions.TimeoutError) else "reset"
    return f"{kind}: {type(error).__name__} {type(reason).__name__ if reason else ''}".strip()


def percentile(values: list[float], share: float) -> float:
    """The `share` percentile (0-100) of `values`, inclusive method; NaN when empty."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(share * 10) - 1]


def statuses(outcomes: list[Outcome]) -> dict[str, int]:
    """How many answers of each status; a broken connection counts as `reset`/`timeout`."""
    counted: Counter[str] = Counter()
    for outcome in outcomes:
        key = outcome.detail.split(":")[0] if outcome.status == RESET else str(outcome.status)
        counted[key] += 1
    return dict(sorted(counted.items()))


def check_buckets(client: Minio, incoming: str, processed: str) -> tuple[int, list[str]]:
    """Every object named by its SHA-256 and whole; every marker pointing at a stored result.

    The processed bucket also holds `sources/<incoming-name>` markers, empty objects whose
    `x-amz-meta-processed` names the result of that conversion. Returns (objects checked,
    problems found).
    """
    problems: list[str] = []
    names: dict[str, set[str]] = {incoming: set(), processed: set()}
    markers: list[str] = []
    checked = 0
    for bucket in (incoming, processed):
        for listed in client.list_objects(bucket_name=bucket, recursive=True):
            name = str(listed.object_name)
            if bucket == processed and name.startswith("sources/"):
                markers.append(name)
                continue
            checked += 1
            names[bucket].add(name)
            response = client.get_object(bucket_name=bucket, object_name=name)
            try:
                data = response.read()
            finally:
                close_response(response)
            if sha256(data) != name:
                problems.append(f"{bucket}/{name}: its bytes hash to {sha256(data)}")
            if len(data) != listed.size or not data:
                problems.append(f"{bucket}/{name}: {len(data)} bytes, listed as {listed.size}")
    for marker in markers:
        checked += 1
        source = marker.removeprefix("sources/")
        metadata = client.stat_object(bucket_name=processed, object_name=marker).metadata or {}
        result = str(metadata.get("x-amz-meta-processed", ""))
        # Objects written while the listing ran may be missing from it: ask for them directly.
        if result not in names[processed] and not _stored(client, processed, result):
            problems.append(f"{processed}/{marker}: points at {result!r}, which is not stored")
        if source not in names[incoming] and not _stored(client, incoming, source):
            problems.append(f"{processed}/{marker}: its source is not in {incoming}")
    return checked, problems


def _stored(client: Minio, bucket: str, name: str) -> bool:
    if not name:
        return False
    try:
        client.stat_object(bucket_name=bucket, object_name=name)
    except S3Error as error:
        if error.code in ("NoSuchKey", "NoSuchObject"):
            return False
        raise
    return True


def check_paths(http: urllib3.PoolManager, base: str, paths: set[str]) -> list[str]:
    """Each path read back through the API, whole: the problems (an empty list when none)."""

    def problem(path: str) -> str | None:
        answer = http.request("GET", base + path, retries=False)
        if answer.status != 200:
            return f"{path}: {answer.status}"
        if sha256(answer.data) != path.rsplit("/", 1)[1]:
            return f"{path}: its bytes do not hash to its name"
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [found for found in pool.map(problem, sorted(paths)) if found is not None]


def describe(value: Any) -> str:
    """Seconds as milliseconds for a report line; `-` for nothing."""
    return "-" if value is None else f"{value * 1000:.0f} ms"
