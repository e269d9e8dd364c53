"""Fixtures shared by every test package: a real S3 server process on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.postgres import PostgresServer
from tests.postgres import missing_reason as postgres_missing_reason
from tests.servers import free_port, wait_for_port


@dataclass
class S3Server:
    """moto's standalone S3 server, run as a separate process on loopback."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    access_key: str = "test-access-key"
    secret_key: str = "test-secret-key"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("moto_server")),
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def env(self) -> dict[str, str]:
        """The API's storage settings (MINIO_*) that point at this server."""
        return {
            "MINIO_ENDPOINT": self.endpoint,
            "MINIO_ACCESS_KEY": self.access_key,
            "MINIO_SECRET_KEY": self.secret_key,
            "MINIO_SECURE": "false",
        }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server for the session; tests that stop or pause it use `own_s3_server`."""
    server = S3Server(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_s3_server() -> Iterator[S3Server]:
    """A private S3 server that a test may pause, stop and restart."""
    server = S3Server(port=free_port())
    server.start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session, on loopback; skipped where it is not installed."""
    reason = postgres_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PostgresServer()
    server.start()
    yield server
    server.stop()
