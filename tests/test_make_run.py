"""`make run`, as a newcomer uses it: start it, try what it prints, stop it, nothing left behind."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from tests.servers import alive, free_port

ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "Running; Ctrl-C to stop."
START_SECONDS = 120


def _lines(stream: io.TextIOBase, into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


def _read_until_ready(lines: queue.Queue[str | None]) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if line == READY_LINE:
            return seen
    raise AssertionError("make run did not get ready:\n" + "\n".join(seen))


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def _descendants(root: int) -> set[int]:
    parents = {
        int(p.name): _parent(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()
    }
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


@contextmanager
def make_run(args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`make run ARGS=<args>` in a session of its own like a terminal's, once it is ready."""
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"ARGS={args}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert make.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(make.stdout, lines), daemon=True).start()
    try:
        yield make, _read_until_ready(lines)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
        make.wait(timeout=30)


@pytest.fixture
def running() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`make run` with the sitemaps flag on free ports."""
    with make_run(f"--port {free_port()} --origin-port {free_port()} --sitemaps") as started:
        yield started


def _printed(output: list[str], label: str) -> str:
    for line in output:
        match = re.match(rf"\s+{label}\s+(\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError(f"no {label} line in:\n" + "\n".join(output))


def _check_printed_urls(output: list[str], tmp_path: Path) -> None:
    api = _printed(output, "API").rstrip("/")
    assert _get(f"{api}/healthz")[0] == 200
    assert _get(f"{api}/readyz")[0] == 200
    curls = [line.strip() for line in output if line.strip().startswith("curl ")]
    assert len(curls) == 3, output
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed; the printed curl lines cannot be run as typed")
    answers = [
        subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        for line in curls
    ]
    assert [answer.returncode for answer in answers] == [0, 0, 0], answers
    assert answers[0].stdout.startswith('{"path":"/incoming/'), answers[0].stdout
    assert answers[1].stdout.startswith('{"path":"/processed/'), answers[1].stdout
    grey = Image.open(tmp_path / "grey-photo.jpg")
    assert (grey.format, grey.mode) == ("JPEG", "L")
    index_url = _printed(output, "index")
    status, index = _get(index_url)
    assert status == 200
    robots = _get(f"{api}/robots.txt")[1].decode().splitlines()
    assert f"Sitemap: {index_url}" in robots
    [sitemap_url] = re.findall(r"<loc>([^<]+)</loc>", index.decode())
    urls = re.findall(r"<loc>([^<]+)</loc>", gzip.decompress(_get(sitemap_url)[1]).decode())
    assert len(urls) == 4  # one per converted sample, nothing else
    for url in urls:
        assert url.startswith(f"{api}/processed/")
        assert _get(url)[0] == 200


@pytest.mark.parametrize(
    ("how", "sig"),
    [
        ("Ctrl-C to the terminal's process group", signal.SIGINT),
        ("kill <make's pid>", signal.SIGTERM),
    ],
)
def test_make_run_answers_what_it_prints_and_stops_cleanly(
    running: tuple[subprocess.Popen[str], list[str]], tmp_path: Path, how: str, sig: signal.Signals
) -> None:
    make, output = running
    _check_printed_urls(output, tmp_path)
    started = _descendants(make.pid)
    assert len(started) >= 4, started  # the script, moto, and gunicorn's master and workers
    if sig == signal.SIGINT:
        os.killpg(make.pid, sig)
    else:
        make.send_signal(sig)
    make.wait(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(map(alive, started)):
        time.sleep(0.2)
    assert not [pid for pid in started if alive(pid)], f"left running after {how}"


def _run_local(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """scripts/run_local.py run to its end (it stops at once on these errors), text captured."""
    return subprocess.run(
        [sys.executable, "scripts/run_local.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_busy_port_is_one_line_naming_what_listens_and_nothing_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_local("--port", str(port))
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    # This test's own process listens there.
    assert line.startswith(
        f"make run: error: port {port} on 127.0.0.1 is in use by pid {os.getpid()} ("
    ), line
    assert line.endswith("); stop it or pick another: make run ARGS='--port 8090'")
    assert not (ROOT / "build" / "run" / str(port)).exists()


def _time_waits(port: int) -> int:
    """Connections on `port` of 127.0.0.1 waiting out TIME_WAIT (state 06 in /proc/net/tcp)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1
        for row in rows
        if row.split()[3] == "06" and int(row.split()[1].split(":")[1], 16) == port
    )


def _closed_by_the_server(port: int) -> None:
    """One HTTP/1.0 GET that the server closes first, read to its end before closing here:
    the connection's TIME_WAIT then stays on the server's port."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(b"GET /photo.jpg HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 200 "), answer[:100]


def _script_of(make: subprocess.Popen[str]) -> int:
    """The pid of scripts/run_local.py under `make run`."""
    for pid in _descendants(make.pid):
        with contextlib.suppress(OSError):
            if b"scripts/run_local.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    raise AssertionError("no scripts/run_local.py under make run")


def test_make_run_starts_again_at_once_after_ctrl_c_and_after_sigkill() -> None:
    """The same ports at once: after Ctrl-C with connections in TIME_WAIT on the origin's
    port, and after SIGKILL of the script, which cannot stop its children itself."""
    api, origin = free_port(), free_port()
    args = f"--port {api} --origin-port {origin}"
    with make_run(args) as (make, _output):
        _closed_by_the_server(origin)
        os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=60)
    assert _time_waits(origin) > 0
    with make_run(args) as (make, _output):
        started = _descendants(make.pid)
        os.kill(_script_of(make), signal.SIGKILL)
        make.wait(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(map(alive, started)):
            time.sleep(0.1)
        assert not [pid for pid in started if alive(pid)], "left running after SIGKILL"
    with make_run(args) as (make, output):
        assert _get(_printed(output, "API").rstrip("/") + "/readyz")[0] == 200
        os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=60)


def test_an_api_that_cannot_start_is_named_with_the_end_of_its_log() -> None:
    port = free_port()
    done = _run_local(
        "--port", str(port), "--origin-port", str(free_port()), WEB_CONCURRENCY="many"
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "make run: error: the API exited with status 2 while starting; "
        f"the end of {ROOT}/build/run/{port}/api.log:",
        '  error: WEB_CONCURRENCY must be an integer from 1 to 64, got "many"',
    ]
