"""Fixtures shared by every test package: a real S3 server process on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

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
        """The storage settings that point the API and the sitemap job at this server."""
        return {
            "MINIO_ENDPOINT": self.endpoint,
            "MINIO_ACCESS_KEY": self.access_key,
            "MINIO_SECRET_KEY": self.secret_key,
            "MINIO_SECURE": "false",
        }

    def client(self) -> Minio:
        """A storage client that reads and writes the buckets directly."""
        return Minio(
            endpoint=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
        )


# `make test` runs the tests on every core with pytest-xdist (`-n auto --dist loadscope`).
# Each group below runs whole in one worker: a directory whose tests share session fixtures
# or names outside their temporary directories, else one module (its module fixtures).
SHARED_DIRECTORIES = {
    "container": "one image build, fixed image and container names",
    "infra": "every stack variant rendered once",
}
# The groups that take longest (`pytest --durations`), started first so that none of them is
# the last to start: mypy over everything, the container image, the fault drills.
LONGEST = ("tests/test_repository.py", "container", "tests/service/test_faults.py", "infra")


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`--numprocesses auto`: one worker more than the cores. The tests spend about a third of
    their time waiting on servers they started (on 2 cores, two workers kept the CPUs 70 % busy);
    PYTEST_XDIST_AUTO_NUM_WORKERS still sets the number."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else None


def group_of(nodeid: str) -> str:
    """The group of tests that runs in one worker with the test `nodeid`."""
    module = nodeid.split("::", 1)[0]
    parts = module.split("/")
    return parts[1] if len(parts) > 2 and parts[1] in SHARED_DIRECTORIES else module


def _start_rank(item: pytest.Item) -> int:
    group = group_of(item.nodeid)
    return LONGEST.index(group) if group in LONGEST else len(LONGEST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_start_rank)  # stable: the order within and after them stays


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope` by group_of, in collection order (longest first)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            """As xdist's, but every test of the unit: schemathesis gives the operations of
            one test the same node id under pytest 9, and xdist would run only the first."""
            scope, work_unit = self.workqueue.popitem(last=False)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            collection = self.registered_collections[node]
            node.send_runtest_some(
                [index for index, nodeid in enumerate(collection) if work_unit.get(nodeid) is False]
            )

    config.option.loadscopereorder = False
    return ByGroup(config, log)


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
