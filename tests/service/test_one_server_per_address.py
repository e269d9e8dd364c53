"""One API per address: a second server started where one listens is refused with one line.

However the second is started (`python -m service.serve`, the Dockerfile's command, gunicorn
with the project's config, or `make run`), the kernel refuses it the address, because the
first one's master listens without SO_REUSEPORT; the first keeps every connection. The
start-up log names the address, and the workers go when their master is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.listeners import listening_sockets
from tests.servers import alive, free_port
from tests.service.serving_support import Served, clean_env, served

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def container_command() -> list[str]:
    """The Dockerfile's CMD, run with this virtualenv's Python."""
    [line] = [
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")
    ]
    command: list[str] = json.loads(line[len("CMD ") :])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


SECOND_STARTS = {
    "serve": [sys.executable, "-m", "service.serve"],
    "the container command": container_command(),
    "gunicorn": [GUNICORN, "--config", "python:service.gunicorn_conf", "service.app:create_app()"],
}


@pytest.fixture(scope="module")
def first(s3_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The first server, which every second start in this module meets on its address."""
    env = {**s3_server.env(), "WEB_CONCURRENCY": "2"}
    with served(env, tmp_path_factory.mktemp("first")) as running:
        yield running


def _run_to_end(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_start_up_log_names_the_address(first: Served) -> None:
    messages = [line.get("message") for line in first.log_lines()]
    assert f"Listening at: http://127.0.0.1:{first.port} ({first.process.pid})" in messages


@pytest.mark.parametrize("how", sorted(SECOND_STARTS))
def test_a_second_server_on_the_address_is_refused_with_one_line(
    first: Served, s3_server: Any, how: str
) -> None:
    command = [*SECOND_STARTS[how], "--bind", f"127.0.0.1:{first.port}"]
    done = _run_to_end(command, clean_env(**s3_server.env(), WEB_CONCURRENCY="2"))
    assert done.returncode == 1, done.stderr
    # gunicorn's own JSON start-up line comes first; the refusal is the one plain line.
    plain = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert len(plain) == 1, done.stderr
    assert plain[0].startswith(
        f"error: cannot listen on 127.0.0.1:{first.port}: Address already in use "
        f"by pid {first.process.pid} ("
    ), plain[0]
    assert plain[0].endswith(") and 2 more processes; stop it or give another --bind")
    # The first server still holds the one listening socket, so it gets every connection.
    assert len(listening_sockets("127.0.0.1", first.port)) == 1
    assert all(first.request("GET", "/healthz").status == 200 for _ in range(20))
    assert first.process.poll() is None


def test_make_run_on_the_address_is_refused_with_one_line(first: Served) -> None:
    ports = ["--port", str(first.port), "--origin-port", str(free_port())]
    done = _run_to_end([sys.executable, "scripts/run_local.py", *ports], dict(os.environ))
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(
        f"make run: error: port {first.port} on 127.0.0.1 is in use by pid {first.process.pid} ("
    ), line
    assert line.endswith(
        ") and 2 more processes; stop it or pick another: make run ARGS='--port 8090'"
    )


def test_the_workers_go_with_a_killed_master(s3_server: Any, tmp_path: Path) -> None:
    """Killed outright, the master cannot stop its workers: the kernel does (PR_SET_PDEATHSIG)."""
    with served({**s3_server.env(), "WEB_CONCURRENCY": "2"}, tmp_path) as running:
        workers = running.workers()
        assert len(workers) == 2
        os.kill(running.process.pid, signal.SIGKILL)
        running.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            any(map(alive, workers)) or listening_sockets("127.0.0.1", running.port)
        ):
            time.sleep(0.05)
        assert not [pid for pid in workers if alive(pid)]
        assert not listening_sockets("127.0.0.1", running.port)
