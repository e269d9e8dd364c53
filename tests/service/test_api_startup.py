"""Start-up: bad settings stop the process with one line; gunicorn serves the app."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import urllib3

from service.fields import keys_of
from service.settings import API_SETTINGS, default_text
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
FACTORY = "service.app:create_app()"


def clean_env(**settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(
            ("MINIO_", "MAX_", "FETCH_", "STORAGE_", "WEB_", "PROMETHEUS")
        )
    }
    env.update(settings)
    return env


BAD = [
    ({}, "MINIO_ENDPOINT"),
    ({"MINIO_ENDPOINT": "127.0.0.1:9", "MINIO_ACCESS_KEY": "a"}, "MINIO_SECRET_KEY"),
    (
        {
            "MINIO_ENDPOINT": "127.0.0.1:9",
            "MINIO_ACCESS_KEY": "a",
            "MINIO_SECRET_KEY": "b",
            "MAX_IMAGE_PIXELS": "lots",
        },
        "MAX_IMAGE_PIXELS",
    ),
    (
        {
            "MINIO_ENDPOINT": "127.0.0.1:9",
            "MINIO_ACCESS_KEY": "a",
            "MINIO_SECRET_KEY": "b",
            "STORAGE_TIMEOUT_SECONDS": "-1",
        },
        "STORAGE_TIMEOUT_SECONDS",
    ),
]


def run_to_end(command: list[str], settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`command` run with only `settings` for the service, its output captured as text."""
    return subprocess.run(
        command,
        cwd=ROOT,
        env=clean_env(**settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stopped_with_one_line(command: list[str], settings: dict[str, str], name: str) -> int:
    """Run `command` with bad settings: it prints one line naming `name`; its exit code."""
    done = run_to_end(command, settings)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert name in lines[0]
    return done.returncode


@pytest.mark.parametrize(("settings", "name"), BAD)
def test_bad_settings_stop_the_factory_with_one_line(settings: dict[str, str], name: str):
    code = "from service.app import create_app; create_app()"
    assert stopped_with_one_line([sys.executable, "-c", code], settings, name) == 2


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        *BAD[:1],
        ({**BAD[1][0], "MINIO_SECRET_KEY": "b", "WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
    ],
)
def test_bad_settings_stop_gunicorn_with_one_line(settings: dict[str, str], name: str):
    command = [GUNICORN, "--config", "python:service.gunicorn_conf", FACTORY]
    assert stopped_with_one_line(command, settings, name) != 0


@pytest.mark.timeout(120)
def test_gunicorn_serves_with_json_logs_and_shared_metrics(s3_server, tmp_path: Path):
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = clean_env(
        **s3_server.env(), WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    )
    log = (tmp_path / "stderr").open("w+")
    process = subprocess.Popen(
        [
            GUNICORN,
            "--config",
            "python:service.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{port}",
            FACTORY,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    http = urllib3.PoolManager(retries=False, timeout=10)
    try:
        _wait_ready(http, port, process)
        for number in range(10):
            answer = http.request(
                "GET",
                f"http://127.0.0.1:{port}/healthz",
                headers={"X-Request-ID": f"gunicorn-{number}"},
            )
            assert answer.status == 200
        text = http.request("GET", f"http://127.0.0.1:{port}/metrics").data.decode()
        counted = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('http_requests_total{method="GET",route="/healthz",status="200"}')
        ]
        assert sum(counted) >= 10  # summed over both workers
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    log.seek(0)
    lines = [json.loads(line) for line in log.read().splitlines() if line.strip()]
    requests = [line for line in lines if line.get("request_id") == "gunicorn-3"]
    assert len(requests) == 1
    assert requests[0]["route"] == "/healthz"
    assert requests[0]["status"] == 200


def _wait_ready(http: urllib3.PoolManager, port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited"
        try:
            if http.request("GET", f"http://127.0.0.1:{port}/readyz").status == 200:
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("gunicorn did not become ready")


SERVE = [sys.executable, "-m", "service.serve"]
GOOD = {"MINIO_ENDPOINT": "127.0.0.1:9", "MINIO_ACCESS_KEY": "a", "MINIO_SECRET_KEY": "b"}


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({}, "MINIO_ENDPOINT"),
        ({**GOOD, "WEB_CONCURRENCY": "many"}, "WEB_CONCURRENCY"),
        ({**GOOD, "WEB_CONCURRENCY": "-3"}, "WEB_CONCURRENCY"),
        ({**GOOD, "FETCH_TIMEOUT_SECONDS": "0"}, "FETCH_TIMEOUT_SECONDS"),
    ],
)
def test_container_command_stops_bad_settings_with_one_line(settings: dict[str, str], name: str):
    """gunicorn alone would print a traceback for WEB_CONCURRENCY=many; the command does not."""
    assert stopped_with_one_line(SERVE, settings, name) == 2


@pytest.mark.timeout(120)
def test_container_command_serves_the_app(s3_server):
    port = free_port()
    process = subprocess.Popen(
        [*SERVE, "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=clean_env(**s3_server.env(), WEB_CONCURRENCY="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        http = urllib3.PoolManager(retries=False, timeout=5)
        _wait_ready(http, port, process)
        assert http.request("GET", f"http://127.0.0.1:{port}/healthz").status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_a_busy_address_stops_the_container_command_with_one_line():
    """gunicorn's reuse_port workers alone would fail to bind and be restarted forever."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_to_end([*SERVE, "--bind", f"127.0.0.1:{port}"], GOOD)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "stop what uses it or give another --bind"
    )


def test_container_command_prints_its_help_without_settings():
    done = run_to_end([*SERVE, "--help"], {})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "gunicorn" in done.stdout
    assert "service.app:create_app()" in done.stdout
    # Every setting the API reads is named with its default, so the help cannot fall behind.
    for model in API_SETTINGS:
        for info in model.model_fields.values():
            line = f"  {keys_of(info)[0]}"
            assert any(entry.startswith(line) for entry in done.stdout.splitlines()), line
            assert f"; {default_text(info)}" in done.stdout
