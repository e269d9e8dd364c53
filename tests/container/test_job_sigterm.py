"""SIGTERM stops the sitemap job cleanly: one line, a non-zero exit, nothing left running.

Three kinds of stop:
- at exact points, on the host: stop_job.py wraps one call of the job and sends the signal
  there (while its modules load, just after a gzip task started, while its worker process
  starts, ...);
- at every line of the writer and of the publisher in turn, in this process (stop_points.py),
  checking that no thread or process is left that would hold the exit (the order of the lines
  where a worker process shares the work depends on its timing, so that path is stopped at
  the exact points above instead);
- at moments through the first seconds of the CronJob's own command in its container, each
  placed after an event seen from outside the container (the job's SIGTERM handler in place,
  its first Kubernetes read, its worker process, its generation's bucket, the switch's read).

The host-side stops find the windows; the container sweep shows the built image as the kubelet
runs it: PID 1, the pod's user, read-only root, the grace period. Before the job's handler is
in place (the interpreter's own start, tens of milliseconds) the kernel drops a SIGTERM to
PID 1, which no code in the job can change; the sweep starts where a stop can be acted on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from minio import Minio

from service.settings import StorageSettings
from service.sitemaps import storage
from service.sitemaps.entries import Row
from service.sitemaps.naming import is_generation
from service.sitemaps.publisher import Publisher
from service.sitemaps.sections import Section
from service.sitemaps.stopping import EXIT_CODE, Stopped, sigterm_raises_stopped, stops_held
from service.sitemaps.writer import Limits, write_sections
from tests.conftest import S3Server
from tests.container.conftest import ClusterApi
from tests.container.engine import HOST_LOOPBACK, REPORT, Build, tool
from tests.container.pod import PodContainer, Running, start
from tests.container.stop_job import MARK
from tests.container.stop_points import Lines, Traced, in_files, in_functions, sigterm_at_line
from tests.sitemaps.conftest import FakeKube, _served

# Far more rows than a run can write before the signal: the job is mid-generation when it comes.
ENDLESS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100000000) "
    "SELECT 'https://example.test/item/' || i, NULL FROM n"
)
# Enough rows that the worker process starts (after one full file) and gets to count them all.
COUNTED = ENDLESS.replace("100000000", "300000")
BASE = "https://example.test/sitemaps"
# How long a stopped job on the host may take to end before the test calls it a hang.
HANG_SECONDS = 60


def stopped_line(command: str) -> str:
    return f"sitemaps: stopped by SIGTERM before {command} finished; nothing was half-published"


def _group(pgid: int) -> list[int]:
    """The processes of process group `pgid`, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def _generate(tmp_path: Path, query: str) -> list[str]:
    """`generate` from SQLite with `query` into a fresh directory under `tmp_path`."""
    database = tmp_path / "catalog.db"
    sqlite3.connect(database).close()
    return [
        "generate",
        "--source",
        "sql",
        "--database-url",
        f"sqlite:///{database}",
        "--query",
        query,
        "--base-url",
        BASE,
        "--out",
        str(tmp_path / "out"),
    ]


def _assert_stopped_cleanly(job: subprocess.Popen[str], command: str) -> str:
    """The job ends with the stop's exit code and one line, and leaves no process behind."""
    try:
        _, stderr = job.communicate(timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        _, stderr = job.communicate(timeout=10)
        raise AssertionError(
            f"the job still ran {HANG_SECONDS} s after SIGTERM:\n{stderr}"
        ) from None
    assert job.returncode == EXIT_CODE, stderr
    assert stderr.strip().splitlines()[-1] == stopped_line(command), stderr
    assert "Traceback" not in stderr, stderr
    deadline = time.monotonic() + 10
    while _group(job.pid) and time.monotonic() < deadline:  # its worker went with it
        time.sleep(0.05)
    assert _group(job.pid) == [], "a process of the job outlived it"
    return stderr


def test_sigterm_during_generate_exits_with_one_line(tmp_path) -> None:
    job = subprocess.Popen(
        [sys.executable, "-m", "service.sitemaps", *_generate(tmp_path, ENDLESS)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group: the worker it spawns joins it
    )
    deadline = time.monotonic() + 60
    # Once the first file is full, the job starts its worker process for the far half.
    while len(_group(job.pid)) < 2 and time.monotonic() < deadline:
        assert job.poll() is None, job.communicate(timeout=10)[1]
        time.sleep(0.05)
    assert len(_group(job.pid)) >= 2, "the worker process never started"
    job.send_signal(signal.SIGTERM)
    _assert_stopped_cleanly(job, "generate")


# Each point: where (see stop_job.py), of what, and the query the job reads.
EXACT_POINTS = {
    # The entry point holds a stop from its first line until the job's SIGTERM block begins;
    # without that, a stop while the modules load was lost (as PID 1) or ended the job silently.
    "while its modules load": ("import", "service.sitemaps.cli", ENDLESS),
    "while it reads its options": ("before", "service.sitemaps.cli:build_parser", ENDLESS),
    # The gzip task of the first file has a thread, which the writer has not recorded yet.
    # Unrecorded, nothing ended it, and the interpreter's exit waited for it for ever.
    "a gzip task just started": ("after", "concurrent.futures:ThreadPoolExecutor.submit", ENDLESS),
    # A stop held during the start: the worker must not inherit a SIGTERM it ignores.
    "the worker process starting": (
        "before",
        "multiprocessing.popen_spawn_posix:Popen._launch",
        ENDLESS,
    ),
    "the worker's count arriving": ("before", "service.sitemaps.writer:_answer", COUNTED),
    # Every file written; the worker has not been joined yet.
    "the worker process ending": ("before", "service.sitemaps.writer:_end", COUNTED),
}


@pytest.mark.parametrize("point", EXACT_POINTS)
def test_a_stop_at_an_exact_point_ends_the_job(point: str, tmp_path) -> None:
    where, target, query = EXACT_POINTS[point]
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.container.stop_job",
            where,
            target,
            "--",
            *_generate(tmp_path, query),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    stderr = _assert_stopped_cleanly(job, "generate")
    assert f"{MARK} {where} {target}" in stderr  # the stop came at the point, not at the end


def test_a_stop_during_a_step_that_must_not_be_cut_waits_for_its_end() -> None:
    """SIGTERM while the SQLite worker process is being started: Stopped comes after the start."""
    steps: list[str] = []

    def step() -> None:
        with sigterm_raises_stopped():
            with stops_held():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("finished the step")
            steps.append("went on")  # never reached

    with pytest.raises(Stopped):
        step()
    assert steps == ["finished the step"]


def test_a_stop_that_comes_out_as_another_error_is_still_a_stop() -> None:
    """A SIGTERM while a module defines a class: Python 3.11 turns what a __set_name__ raises
    into a RuntimeError, and the job imports minio, lightkube and more after it has started."""

    class Described:
        def __set_name__(self, owner: type, name: str) -> None:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Stopped), sigterm_raises_stopped():
        type("Defined", (), {"field": Described()})


@dataclass
class AfterStop:
    """What a run stopped at one line left: whether it raised Stopped, threads, processes."""

    lines: Lines
    stopped: bool
    threads: list[str]
    processes: list[str]


def _stop_at_line(line: int | None, traced: list[Traced], run: Callable[[], object]) -> AfterStop:
    """Run `run` with SIGTERM at its `line`-th line of `traced` code (None: count only).

    A thread or process still there after a few seconds would keep the job's interpreter from
    exiting: non-daemon threads are joined at exit.
    """
    before = set(threading.enumerate())
    stopped = False
    with sigterm_raises_stopped(), sigterm_at_line(line, *traced) as lines:
        try:
            run()
        except Stopped:
            stopped = True
    started = [t for t in threading.enumerate() if t not in before and not t.daemon]
    deadline = time.monotonic() + 5
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    return AfterStop(
        lines,
        stopped,
        [t.name for t in started if t.is_alive()],
        [p.name or "" for p in multiprocessing.active_children()],
    )


def _rows(count: int) -> list[Row]:
    return [(f"https://img.example.test/processed/{i:064x}", None) for i in range(count)]


def _sweep(
    traced: list[Traced],
    run: Callable[[], object],
    reset: Callable[[], None],
    check: Callable[[], None] = lambda: None,
) -> int:
    """Stop `run` at each of its lines of `traced` code in turn; every stop must leave nothing running
    and pass `check`. `reset` puts back the state a run starts from. Returns how many lines."""
    reset()
    total = _stop_at_line(None, traced, run)
    assert not total.stopped
    assert total.lines.count > 0
    for line in range(1, total.lines.count + 1):
        reset()
        after = _stop_at_line(line, traced, run)
        assert after.stopped, after
        assert after.threads == [], after
        assert after.processes == [], after
        check()
    return total.lines.count


def test_a_stop_at_any_line_of_writing_files_leaves_no_thread_behind(tmp_path) -> None:
    """Every line of the writer: files full mid-batch, two sections, the index."""
    rows = _rows(9)

    def run() -> None:
        sections = [Section("", [rows[0:3], rows[3:6]]), Section("more", [rows[6:9]])]
        write_sections(sections, tmp_path / "out", BASE, Limits(max_urls=2))

    lines = _sweep([in_files("writer.py", "stopping.py")], run, lambda: None)
    REPORT["stops at every line of the writer"] = f"{lines} lines"


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    yield from _served(FakeKube())


def test_a_stop_at_any_line_of_publishing_leaves_the_ingress_whole(
    s3_server: S3Server, kube: FakeKube
) -> None:
    """Every line of the publisher's steps and of the upload (the writer's are above; the other
    storage functions are one request each, and a stop in one is a stop at its caller's line).

    The Ingress points at the generation it pointed at before, or, for a stop after the
    switch, at a new one that is complete; the earlier one is still there either way.
    """
    client = storage.connect(StorageSettings.from_env(s3_server.env()))
    for name in storage.generations(client):
        storage.delete_bucket(client, name)
    rows = _rows(6)

    def run() -> None:
        publisher = Publisher(client, kube.switch(), retain=1, workers=2)
        publisher.publish([Section("", [rows[0:3], rows[3:6]])], BASE, limits=Limits(max_urls=3))

    run()
    first, version = kube.live, kube.resource_version
    assert is_generation(first)

    def reset() -> None:
        for name in storage.generations(client):
            if name != first:
                storage.delete_bucket(client, name)
        kube.live, kube.resource_version = first, version

    def check() -> None:
        if kube.live == first:
            assert kube.resource_version == version
        else:  # stopped after the switch
            storage.published_sizes(client, str(kube.live))  # raises unless complete
            assert str(first) in storage.generations(client)

    traced = [in_files("publisher.py", "stopping.py"), in_functions("storage.py", "upload")]
    lines = _sweep(traced, run, reset, check)
    REPORT["stops at every line of publishing"] = f"{lines} lines"


# The container sweep: the CronJob's command on a SQLite source big enough that its worker
# process starts (after one full file of 50,000 URLs) and that it uploads several files.
SWEEP_ROWS = 120_000
QUERY = "SELECT loc, lastmod FROM items ORDER BY id"


@dataclass(frozen=True)
class Moment:
    """When the sweep sends SIGTERM: `delay` seconds after `event` was seen from outside."""

    event: str
    delay: float


# Events, in the order a run meets them (see `_seen`).
EVENTS = ("handler", "ingress read", "worker", "bucket", "switch read")
SWEEP = [
    *(Moment("handler", d) for d in (0.0, 0.03, 0.08, 0.15, 0.25, 0.4, 0.6)),
    *(Moment("ingress read", d) for d in (0.0, 0.05, 0.15, 0.3)),
    *(Moment("worker", d) for d in (0.0, 0.03, 0.1, 0.2, 0.4)),
    *(Moment("bucket", d) for d in (0.0, 0.02, 0.05)),
    Moment("switch read", 0.0),
]
# Where a run was when the signal went, from what was seen then; the sweep must meet each.
PHASES = ("starting", "generating", "worker running", "uploading", "switching")


@dataclass
class Job:
    """One run of the job's container, watched from the host."""

    running: Running
    pid: int  # its PID 1, as the host sees it
    kube: FakeKube
    client: Minio

    def catches_sigterm(self) -> bool:
        """Whether PID 1 has a SIGTERM handler: before it has one, the kernel drops SIGTERM."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:  # it has ended
            return False
        caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
        return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))

    def worker_running(self) -> bool:
        """Whether the job's worker process runs (a child started by multiprocessing's spawn)."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                command = (stat.parent / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if parent == self.pid and b"spawn_main" in command:
                return True
        return False

    def has_bucket(self) -> bool:
        return any(is_generation(b.name) for b in self.client.list_buckets())

    def seen(self, event: str) -> bool:
        if event == "handler":
            return self.catches_sigterm()
        if event == "ingress read":
            return self.kube.arrived >= 1
        if event == "worker":
            return self.worker_running()
        if event == "bucket":
            return self.has_bucket()
        return self.kube.arrived >= 2  # the switch's read, which the stand-in holds

    def phase(self) -> str:
        if self.kube.arrived >= 2:
            return "switching"
        if self.has_bucket():
            return "uploading"
        if self.worker_running():
            return "worker running"
        return "generating" if self.kube.arrived else "starting"

    def exited(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{self.pid}").exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def _settle(fake: FakeKube) -> None:
    """Wait until the stand-in has answered every request that reached it (a released one
    is listed only once answered, and would count towards the next run's hold)."""
    deadline = time.monotonic() + 30
    while len(fake.requests) < fake.arrived:
        assert time.monotonic() < deadline, "the API stand-in still holds a request"
        time.sleep(0.01)


def _catalog(directory: Path) -> Path:
    directory.mkdir(mode=0o755)
    with sqlite3.connect(directory / "catalog.db") as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, loc TEXT, lastmod TEXT)")
        db.executemany(
            "INSERT INTO items (loc, lastmod) VALUES (?, ?)",
            ((f"https://shop.test/item/{n}", "2026-11-01") for n in range(SWEEP_ROWS)),
        )
    db.close()
    (directory / "catalog.db").chmod(0o644)
    return directory


def _stop_job_at(
    moment: Moment,
    spec: PodContainer,
    image: str,
    server: S3Server,
    cluster_api: ClusterApi,
    data: Path,
    client: Minio,
    started: list[Running],
) -> str:
    """Run the job, send SIGTERM at `moment` as the kubelet does, check the stop; its phase."""
    fake = cluster_api.fake
    before = fake.ingress()
    command = [
        *spec.container["command"],
        *("--source", "sql", "--database-url", "sqlite:////data/catalog.db", "--query", QUERY),
    ]
    overrides = {
        "MINIO_ENDPOINT": f"{HOST_LOOPBACK}:{server.port}",
        "MINIO_ACCESS_KEY": server.access_key,
        "MINIO_SECRET_KEY": server.secret_key,
        "KUBERNETES_SERVICE_HOST": HOST_LOOPBACK,
        "KUBERNETES_SERVICE_PORT": str(cluster_api.port),
    }
    running = start(
        spec,
        image,
        overrides,
        cluster_api.account,
        extra_mounts={data: "/data:ro"},
        command=command,
    )
    started.append(running)
    job = Job(running, int(running.state()["Pid"]), fake, client)
    deadline = time.monotonic() + 120
    while not job.seen(moment.event):
        assert time.monotonic() < deadline, f"{moment.event} never came:\n{running.logs()}"
        assert Path(f"/proc/{job.pid}").exists(), f"the job ended early:\n{running.logs()}"
        time.sleep(0.005)
    time.sleep(moment.delay)
    phase = job.phase()
    os.kill(job.pid, signal.SIGTERM)  # what the runtime does first when the kubelet stops a pod
    if not job.exited(spec.grace_seconds):
        tool("podman", "kill", "--signal", "KILL", running.name, check=False)  # grace is over
    code = running.wait(30)
    logs = running.logs()
    assert code == EXIT_CODE, f"{moment} ({phase}): exit {code}\n{logs}"
    assert running.stderr_lines()[-1] == stopped_line("publish"), f"{moment} ({phase})\n{logs}"
    assert "Traceback" not in logs, f"{moment} ({phase})\n{logs}"
    assert fake.ingress() == before, f"{moment} ({phase}): the Ingress changed"
    assert {verb for verb, _ in fake.requests} <= {"get"}, fake.requests
    return phase


def test_sigterm_sweep_through_the_jobs_first_seconds(
    built: Build,
    job_spec: PodContainer,
    own_s3_server: S3Server,
    cluster_api: ClusterApi,
    tmp_path: Path,
) -> None:
    """SIGTERM at moments from the job's first line to its switch, one run of the image each.

    The API stand-in holds the switch's read, so that no run switches the Ingress and every
    one of them ends by its stop; each stopped run's bucket is an orphan, removed before the
    next run (in the cluster, the next publish removes it).
    """
    fake = cluster_api.fake
    fake.hold_after = 1  # the job's first read is answered; the switch's read waits
    client = own_s3_server.client()
    data = _catalog(tmp_path / "data")
    started: list[Running] = []
    phases: dict[str, int] = {}
    began = time.monotonic()
    try:
        for moment in SWEEP:
            phase = _stop_job_at(
                moment, job_spec, built.image, own_s3_server, cluster_api, data, client, started
            )
            phases[phase] = phases.get(phase, 0) + 1
            fake.released.set()  # the held read of the stopped run ends
            started.pop().remove()
            _settle(fake)
            for name in storage.generations(client):
                storage.delete_bucket(client, name)
            fake.released.clear()
            fake.arrived = 0
            fake.requests.clear()
    finally:
        fake.released.set()
        for running in started:
            running.remove()
    REPORT["SIGTERM sweep of the job"] = (
        f"{len(SWEEP)} runs in {time.monotonic() - began:.0f} s; stopped while "
        + ", ".join(f"{phase} {phases.get(phase, 0)}" for phase in PHASES)
    )
    assert set(phases) == set(PHASES), phases


def test_a_thread_left_running_does_not_hold_a_stopped_job(tmp_path) -> None:
    """The interpreter's exit waits for every thread still running: one that never ends (as an
    upload in flight to a storage that stopped answering) must not keep a stopped job alive."""
    entry = (
        "import os, runpy, signal, sys, threading; "
        "threading.Thread(target=threading.Event().wait, name='never-ends').start(); "
        "threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start(); "
        "sys.argv[0] = 'sitemaps'; "
        "runpy.run_module('service.sitemaps', run_name='__main__', alter_sys=True)"
    )
    job = subprocess.Popen(
        [sys.executable, "-c", entry, *_generate(tmp_path, ENDLESS)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _assert_stopped_cleanly(job, "generate")
