#!/usr/bin/env python3
"""`make run`: the image API on 127.0.0.1 with all it needs, and no cluster, Docker or account.

Starts, each on loopback only and each a child process:
  - moto's S3 server (the one the tests use) standing in for MinIO; it keeps every object in
    memory and loses them when it stops, so it is for trying things out, not for data;
  - a local origin (Python's http.server) serving a few sample images made here, so a first
    upload works offline;
  - the API as the container runs it: `python -m service.serve` with its production settings.
Then it prints the URLs and curl lines to try, and runs until Ctrl-C (SIGINT) or SIGTERM, which
stop everything it started. `--sitemaps` also uploads and converts the samples and writes the
sitemaps of what was converted, served by the origin and named in the API's /robots.txt.

Nothing outlives it: killed outright (SIGKILL), its children get SIGKILL from the kernel
(PR_SET_PDEATHSIG), and the API's workers get it when their master dies. A port held only by
connections of an earlier run, waiting out TIME_WAIT, does not count as in use.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from urllib.error import URLError
from urllib.request import Request, urlopen

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw  # noqa: E402

from service.imaging import greyscale  # noqa: E402
from service.listeners import who_listens  # noqa: E402
from service.parent_death import die_with_parent  # noqa: E402
from service.settings import (  # noqa: E402
    FetchSettings,
    RobotsSettings,
    ServingSettings,
    StorageSettings,
    env_pairs,
)
from service.sitemaps.writer import INDEX_NAME  # noqa: E402

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
ACCESS_KEY = "local-access-key"
SECRET_KEY = "local-secret-key"  # noqa: S105 - moto accepts any key; loopback only
START_SECONDS = 60.0
STOP_SECONDS = 30.0
SITEMAPS_DIR = "sitemaps"  # under the origin's directory and URL


class RunError(Exception):
    """Something that stops `make run` before it serves; the message says what to do."""


def check_port(option: str, port: int, other: int) -> None:
    """Nothing listens on `port`; else the error names what does, where /proc tells.

    SO_REUSEADDR, as the servers themselves bind: connections of an earlier run waiting out
    TIME_WAIT do not hold the port.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            pass
        else:
            return
    holder = who_listens(HOST, port)
    whom = f" by {holder}; stop it" if holder else "; stop what uses it"
    raise RunError(
        f"port {port} on {HOST} is in use{whom} or pick another: make run ARGS='{option} {other}'"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def sample_images() -> dict[str, bytes]:
    """A photo-like JPEG, a PNG with transparency, a WebP and a small animated GIF."""
    size = (640, 480)
    photo = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
            Image.effect_noise(size, 40),
        ),
    )
    ImageDraw.Draw(photo).text((20, 20), "kube-image-processing", fill=(255, 255, 0))
    badge = photo.resize((160, 120)).convert("RGBA")
    badge.putalpha(Image.radial_gradient("L").resize((160, 120)))
    frames = [photo.resize((96, 72)).rotate(angle) for angle in (0, 90, 180, 270)]
    encoded: dict[str, bytes] = {}
    for name, image, options in (
        ("photo.jpg", photo, {"quality": 85}),
        ("badge.png", badge, {}),
        ("photo.webp", photo, {"quality": 80}),
        ("spin.gif", frames[0], {"save_all": True, "append_images": frames[1:], "duration": 200}),
    ):
        out = io.BytesIO()
        image.save(out, name.rsplit(".", 1)[1].replace("jpg", "jpeg"), **options)
        encoded[name] = out.getvalue()
    return encoded


def processed_name(data: bytes) -> str:
    """The name POST /processed will give these bytes: conversion is deterministic."""
    with tempfile.SpooledTemporaryFile() as file:
        file.write(data)
        return hashlib.sha256(greyscale(file, 64_000_000).data).hexdigest()


class Children:
    """Child processes in sessions of their own, stopped in reverse order, never left behind.

    Each gets SIGKILL from the kernel if this process dies without stopping them. Setting that
    up in the child (preexec_fn) is safe because this process never starts a thread.
    """

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.log(name).open("wb")
        with log:
            child = subprocess.Popen(  # noqa: S603 - fixed programs, no shell
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Ctrl-C reaches this process only, which then stops the children in order.
                start_new_session=True,
                preexec_fn=partial(die_with_parent, os.getpid()),
            )
        self.running.append((name, child))
        return child

    def exited(self) -> str | None:
        """The name of a child that stopped on its own, if any."""
        return next((name for name, child in self.running if child.poll() is not None), None)

    def stop_all(self) -> None:
        while self.running:
            _name, child = self.running.pop()
            if child.poll() is None:
                # The whole session: gunicorn's workers go with their master.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
                try:
                    child.wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.pid, signal.SIGKILL)
                    child.wait(timeout=STOP_SECONDS)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)  # any stray left in its session


def log_tail(log: Path, lines: int = 5) -> str:
    """The last lines of a child's log, indented, to follow an error about that child."""
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n  {line}" for line in tail)


def wait_until(
    ready: Callable[[], bool], what: str, child: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RunError(
                f"{what} exited with status {child.returncode} while starting; "
                f"the end of {log}:{log_tail(log)}"
            )
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.1)
    raise RunError(
        f"{what} did not start within {START_SECONDS:g} seconds; the end of {log}:{log_tail(log)}"
    )


def listening(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=0.5):
        return True


def answers(url: str) -> bool:
    try:
        with urlopen(url, timeout=2) as response:  # noqa: S310 - a loopback URL built here
            return bool(response.status == 200)
    except URLError:
        return False


def post_json(url: str, body: dict[str, str]) -> str:
    """POST a JSON body like the curl lines do; the `path` of the 201 answer."""
    request = Request(  # noqa: S310 - a loopback URL built here
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urlopen(request, timeout=60) as response:  # noqa: S310 - a loopback URL built here
        path: str = json.load(response)["path"]
        return path


@dataclass(frozen=True)
class Local:
    """Where everything listens once started."""

    api: str
    s3_endpoint: str
    origin: str
    samples: dict[str, bytes]


def api_env(
    s3_endpoint: str, metrics_dir: Path, sitemap_index_url: str | None = None
) -> dict[str, str]:
    """The process environment, plus what make run sets: every other setting keeps its default,
    the one the container and the stacks have too."""
    storage = StorageSettings(endpoint=s3_endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    # The sample origin is on loopback, which the API refuses by default (SSRF guard).
    fetch = FetchSettings(allow_private_networks=True)
    serving = ServingSettings(prometheus_multiproc_dir=str(metrics_dir))
    robots = RobotsSettings(sitemap_index_url=sitemap_index_url)
    return {
        **os.environ,
        **dict(env_pairs(storage, "endpoint", "access_key", "secret_key", "secure")),
        **dict(env_pairs(fetch, "allow_private_networks")),
        **dict(env_pairs(serving, "prometheus_multiproc_dir")),
        # for the API's /robots.txt, when --sitemaps writes the index it names
        **(dict(env_pairs(robots, "sitemap_index_url")) if sitemap_index_url else {}),
    }


def sitemap_index(origin: str) -> str:
    """Where `--sitemaps` writes the index: under the origin, beside the samples."""
    return f"{origin}/{SITEMAPS_DIR}/{INDEX_NAME}"


def start(children: Children, work: Path, args: argparse.Namespace) -> Local:
    s3_port = free_port()
    moto = children.start(
        "s3", [str(BIN / "moto_server"), "-H", HOST, "-p", str(s3_port)], dict(os.environ)
    )
    samples = sample_images()
    directory = work / "origin"
    for name, data in samples.items():
        (directory / name).write_bytes(data)
    origin_url = f"http://{HOST}:{args.origin_port}"
    serve_files = [sys.executable, "-m", "http.server", "--bind", HOST, "--directory"]
    origin = children.start(
        "origin", [*serve_files, str(directory), str(args.origin_port)], dict(os.environ)
    )
    metrics = work / "metrics"
    metrics.mkdir()
    s3_endpoint = f"{HOST}:{s3_port}"
    env = api_env(s3_endpoint, metrics, sitemap_index(origin_url) if args.sitemaps else None)
    api = children.start(
        "api", [sys.executable, "-m", "service.serve", "--bind", f"{HOST}:{args.port}"], env
    )
    wait_until(lambda: listening(s3_port), "the S3 server (moto)", moto, children.log("s3"))
    wait_until(lambda: listening(args.origin_port), "the origin", origin, children.log("origin"))
    api_url = f"http://{HOST}:{args.port}"
    wait_until(lambda: answers(f"{api_url}/readyz"), "the API", api, children.log("api"))
    return Local(api=api_url, s3_endpoint=s3_endpoint, origin=origin_url, samples=samples)


def curl_lines(local: Local, sample: str) -> list[str]:
    incoming = hashlib.sha256(local.samples[sample]).hexdigest()
    grey = processed_name(local.samples[sample])
    json_header = "-H 'Content-Type: application/json'"
    upload = json.dumps({"url": f"{local.origin}/{sample}"})
    convert = json.dumps({"path": f"/incoming/{incoming}"})
    return [
        f"curl -s -X POST {json_header} -d {shlex.quote(upload)} {local.api}/incoming",
        f"curl -s -X POST {json_header} -d {shlex.quote(convert)} {local.api}/processed",
        f"curl -s -o grey-{sample} {local.api}/processed/{grey}",
    ]


def banner(local: Local, work: Path) -> str:
    lines = [
        "",
        "The image API runs on 127.0.0.1 (Ctrl-C stops everything):",
        f"  API            {local.api}/          (routes: {local.api}/openapi.json)",
        f"  health         {local.api}/healthz   {local.api}/readyz   {local.api}/metrics",
        f"  sample images  {local.origin}/  ({', '.join(local.samples)})",
        f"  S3 (moto)      {local.s3_endpoint}  in memory only: everything is gone when it stops",
        f"  logs           {work}",
        "",
        "Upload a sample, convert it to greyscale, read it back:",
        *(f"  {line}" for line in curl_lines(local, "photo.jpg")),
        "",
    ]
    return "\n".join(lines)


def write_sitemaps(local: Local, work: Path) -> Path:
    """Upload and convert every sample through the API, then run the sitemap generator once."""
    for sample in local.samples:
        incoming = post_json(f"{local.api}/incoming", {"url": f"{local.origin}/{sample}"})
        post_json(f"{local.api}/processed", {"path": incoming})
    out = work / "origin" / SITEMAPS_DIR
    env = api_env(local.s3_endpoint, work)
    command = [
        sys.executable,
        "-m",
        "service.sitemaps",
        "generate",
        "--source",
        "bucket",
        "--base-url",
        f"{local.origin}/{SITEMAPS_DIR}",
        "--site-url",
        local.api,
        "--out",
        str(out),
    ]
    done = subprocess.run(  # noqa: S603 - a fixed program, no shell
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=partial(die_with_parent, os.getpid()),
    )
    if done.returncode != 0:
        raise RunError(f"the sitemap generator failed: {done.stderr.strip()}")
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make run",
        description=(
            "Run the image API on 127.0.0.1 with an in-memory S3 server and a local origin "
            "of sample images. Ctrl-C stops everything."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port of the API on 127.0.0.1 (default 8080)"
    )
    parser.add_argument(
        "--origin-port",
        type=int,
        default=8081,
        help="port of the sample images on 127.0.0.1 (default 8081)",
    )
    parser.add_argument(
        "--sitemaps",
        action="store_true",
        help="upload and convert the samples, then write the sitemaps of what was converted",
    )
    return parser.parse_args(argv)


class Stop(Exception):  # noqa: N818 - a signal, not an error
    """SIGINT or SIGTERM arrived."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def serve(args: argparse.Namespace) -> int:
    for option, port in (("--port", args.port), ("--origin-port", args.origin_port)):
        if not 1 <= port <= 65535:
            raise RunError(f"{option} must be from 1 to 65535, got {port}")
    if args.port == args.origin_port:
        raise RunError(f"--port and --origin-port must differ, both are {args.port}")
    check_port("--port", args.port, 8090)
    check_port("--origin-port", args.origin_port, 8091)
    # One directory per API port: a second run on other ports leaves the first one's alone.
    work = ROOT / "build" / "run" / str(args.port)
    shutil.rmtree(work, ignore_errors=True)
    (work / "origin").mkdir(parents=True)
    children = Children(work)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_stop)
    try:
        local = start(children, work, args)
        print(banner(local, work), flush=True)
        if args.sitemaps:
            out = write_sitemaps(local, work)
            files = sorted(path.name for path in out.iterdir())
            print(f"Sitemaps of the converted samples are in {out}: {', '.join(files)}")
            print(f"  index        {sitemap_index(local.origin)}")
            print(f"  robots.txt   {local.api}/robots.txt names it", flush=True)
        print("Running; Ctrl-C to stop.", flush=True)
        while (stopped := children.exited()) is None:
            time.sleep(0.5)
        log = children.log(stopped)
        raise RunError(f"the {stopped} process stopped by itself; the end of {log}:{log_tail(log)}")
    except Stop as signal_name:
        print(f"\n{signal_name}: stopping the API, the S3 server and the origin", flush=True)
        return 0
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        children.stop_all()


def main(argv: list[str]) -> int:
    # `make` killed: SIGTERM, so that this process stops its children in order.
    die_with_parent(os.getppid(), signal.SIGTERM)
    args = parse_args(argv)
    try:
        return serve(args)
    except RunError as error:
        print(f"make run: error: {error}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
