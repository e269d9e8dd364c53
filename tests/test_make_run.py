"""`make run`, as a newcomer uses it: start it, try what it prints, stop it, nothing left behind."""

from __future__ import annotations

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
from pathlib import Path

import pytest
from PIL import Image

from tests.servers import free_port

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


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`make run` with the sitemaps flag on a free port, in a session of its own like a terminal's."""
    make = subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "run",
            f"ARGS=--port {free_port()} --origin-port {free_port()} --sitemaps",
        ],
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
    while time.monotonic() < deadline and any(map(_alive, started)):
        time.sleep(0.2)
    assert not [pid for pid in started if _alive(pid)], f"left running after {how}"


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


def test_a_busy_port_is_one_line_and_nothing_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_local("--port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"make run: error: port {port} on 127.0.0.1 is in use; stop what uses it or pick "
        "another: make run ARGS='--port 8090'"
    ]


def test_an_api_that_cannot_start_is_named_with_the_end_of_its_log() -> None:
    done = _run_local(
        "--port", str(free_port()), "--origin-port", str(free_port()), WEB_CONCURRENCY="many"
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "make run: error: the API exited with status 2 while starting; "
        f"the end of {ROOT}/build/run/api.log:",
        '  error: WEB_CONCURRENCY must be an integer from 1 to 64, got "many"',
    ]
