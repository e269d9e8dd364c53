"""Faults under load: storage paused and restarted, a gunicorn worker killed, an origin hanging.

Run: .venv/bin/python bench/faults.py --full   (about 2.5 min; without --full, the short
form CI runs through tests/service/test_faults.py, about 30 s)

moto, gunicorn (2 workers) and an origin run on 127.0.0.1; clients send a mix of GETs,
POST /incoming and POST /processed throughout, and every answer is recorded with the phase
it was sent in:
  baseline         nothing broken: every answer must be 2xx/304
  storage-paused   moto SIGSTOPped: the API answers 503 with a JSON message, never 500
  after-resume     moto SIGCONTed: time to the first 200 /readyz and 201 POST is measured
  worker-killed    one worker SIGKILLed (several in the full form); the master starts another.
                   A request in flight on the killed worker sees its connection reset:
                   those are counted apart, as resets, not as statuses
  origin-hang      some clients POST /incoming for an origin that never answers: they get
                   502 with a JSON message; the other clients' answers must all be 2xx/304
  checkpoint       both buckets checked (every name the SHA-256 of its bytes, every
                   conversion marker pointing at a stored result), and every path a client
                   got a 201 for so far read back whole through the API
  storage-stopped  moto terminated, then started again. moto keeps objects in memory only,
                   so the restarted moto is empty: that loss is moto's (MinIO keeps its data
                   on disk), and the API must recreate the buckets by itself
  after-restart    recovery measured as after the pause; GETs of paths lost with moto's
                   memory answer 404
  steady           every answer must again be 2xx/304
At the end both buckets are checked again, and every path acknowledged since the restart
is read back. Any 500 (or any 5xx other than 502/503), a 502/503 without a JSON message, a
body that does not hash to its name, a damaged object or a lost one fails the run (exit 1).
Recovery times are reported; the full form also fails if one exceeds 5 s, the short form
only if recovery does not happen before the harness gives up (no test asserts a
timing). The machine's cores are shared by everything: figures are noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    RESET,
    Load,
    Mix,
    Outcome,
    Stack,
    check_buckets,
    check_paths,
    make_images,
    percentile,
    stack,
    statuses,
    wait_until,
)
from service.settings import ApiSettings, FetchSettings, StorageSettings, env_pairs

WORKERS = 2
STORAGE_TIMEOUT_SECONDS = 2.5
FETCH_TIMEOUT_SECONDS = 2.0
MIX = {"get_incoming": 30, "get_processed": 20, "get_cached": 5, "process": 30, "upload": 15}
POSTS = ("process", "upload")
STRICT_PHASES = ("baseline", "steady")
PHASES_BEFORE_RESTART = (
    "baseline",
    "storage-paused",
    "after-resume",
    "worker-killed",
    "origin-hang",
    "checkpoint",
)


@dataclass(frozen=True)
class Plan:
    """How long each phase lasts, and how hard the clients push."""

    clients: int
    images: int
    baseline: float
    paused: float
    after_resume: float
    worker_killed: float
    kills: int
    origin_hang: float
    hang_clients: int
    stopped: float
    after_restart: float
    steady: float
    give_up: float = 60.0  # the harness stops waiting for recovery after this
    recovery_target: float | None = None  # seconds; a longer recovery fails the run


SHORT = Plan(
    clients=8,
    images=40,
    baseline=2,
    paused=4,
    after_resume=2,
    worker_killed=3,
    kills=1,
    origin_hang=4,
    hang_clients=2,
    stopped=3,
    after_restart=3,
    steady=2,
)
FULL = Plan(
    clients=16,
    images=200,
    baseline=15,
    paused=10,
    after_resume=10,
    worker_killed=15,
    kills=3,
    origin_hang=15,
    hang_clients=4,
    stopped=10,
    after_restart=15,
    steady=10,
    recovery_target=5.0,
)


@dataclass
class FaultReport:
    """What happened in each phase, the recovery times, and every failed requirement."""

    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    recovery: dict[str, float | None] = field(default_factory=dict)
    objects_checked: dict[str, int] = field(default_factory=dict)
    paths_checked: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    unverified: int = 0  # acknowledged between the checkpoint and moto's restart
    killed: list[int] = field(default_factory=list)
    unhandled_logged: int = 0  # the app's own 500 handler ran
    cut_off_logged: int = 0  # gunicorn's "Error handling request": a body broke off
    failures: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [
            f"faults under load: {self.plan.clients} clients, gunicorn {WORKERS} workers, "
            f"storage timeout {STORAGE_TIMEOUT_SECONDS:g}s, fetch timeout {FETCH_TIMEOUT_SECONDS:g}s",
            f"{'phase':<16}{'secs':>6}{'answers':>8}{'p50 ms':>8}{'p99 ms':>8}  statuses, by the phase "
            "answered in (reset = connection broken, no answer; latency without the hang "
            "requests)",
        ]
        for phase, lasted in zip(self.phases, self.durations, strict=True):
            answered = [o for o in self.outcomes if o.phase_done == phase]
            took = [o.done - o.sent for o in answered if o.op != "hang"]
            lines.append(
                f"{phase:<16}{lasted:>6.1f}{len(answered):>8}{percentile(took, 50) * 1000:>8.0f}"
                f"{percentile(took, 99) * 1000:>8.0f}  {statuses(answered)}"
            )
        messages = Counter(
            f"{o.status} {o.detail}" for o in self.outcomes if o.status >= 500 or o.status == RESET
        )
        acked = {
            phase: len({o.created for o in self.outcomes if o.created and o.phase_done == phase})
            for phase in self.phases
        }
        lines.append(f"distinct paths acknowledged with 201, by phase: {acked}")
        lines.append("messages of 5xx answers and broken connections:")
        lines += [f"  {count:>6} x {message}" for message, count in messages.most_common(12)]
        lines.append("recovery (seconds from the dependency returning):")
        lines += [f"  {what}: {_seconds(value)}" for what, value in self.recovery.items()]
        lines.append(f"workers killed: {self.killed}")
        lines.append(f"unhandled errors in the gunicorn log: {self.unhandled_logged}")
        lines.append(f"responses gunicorn cut off after the status was sent: {self.cut_off_logged}")
        for when in self.objects_checked:
            lines.append(
                f"{when}: {self.objects_checked[when]} objects and markers checked intact; "
                f"{self.paths_checked[when]} acknowledged paths read back, {self.lost[when]} lost"
            )
        lines.append(
            f"acknowledged between the checkpoint and moto's restart, not verifiable "
            f"(moto's memory is gone): {self.unverified}"
        )
        lines.append("failures: " + ("none" if not self.failures else ""))
        lines += [f"  - {failure}" for failure in self.failures]
        return "\n".join(lines)


def run(plan: Plan) -> FaultReport:
    """Bring the stack up, put it through every fault under load, and check what is left."""
    report = FaultReport(plan)
    images = make_images(plan.images)
    settings = {
        **dict(
            env_pairs(
                ApiSettings(storage_timeout_seconds=STORAGE_TIMEOUT_SECONDS),
                "storage_timeout_seconds",
            )
        ),
        **dict(env_pairs(FetchSettings(timeout_seconds=FETCH_TIMEOUT_SECONDS), "timeout_seconds")),
    }
    with stack(images, workers=WORKERS, clients=plan.clients, **settings) as running:
        half = list(images)[: plan.images // 2]
        mix = Mix(weights=MIX, origin_names=list(images))
        for path in running.seed(half, plan.clients):
            mix.learn(path)
        load = Load(running, mix, plan.clients)
        try:
            load.start(hard_limit_seconds=_total(plan) + 3 * plan.give_up)
            _phases(running, load, report)
        finally:
            load.stop()
        report.outcomes = load.outcomes
        report.phases = [name for name, _ in load.phase_started]
        moments = [moment for _, moment in load.phase_started] + [time.monotonic()]
        report.durations = [end - start for start, end in pairwise(moments)]
        report.unhandled_logged = len(running.gunicorn.log_lines("unhandled error"))
        report.cut_off_logged = len(running.gunicorn.log_lines("Error handling request"))
        restarted = dict(load.phase_started)["after-restart"]
        after = {o.created for o in load.outcomes if o.created and o.done >= restarted}
        _check_storage(running, report, "end", after)
        _judge(report)
        running.keep_logs = bool(report.failures)
    return report


def _phases(running: Stack, load: Load, report: FaultReport) -> None:
    plan = report.plan
    load.set_phase("baseline")
    time.sleep(plan.baseline)

    load.set_phase("storage-paused")
    running.moto.pause()
    try:
        time.sleep(plan.paused)
    finally:
        running.moto.resume()
    load.set_phase("after-resume")
    _recovery(running, load, report, "after resume")
    _sleep_until_phase_lasted(load, plan.after_resume)

    load.set_phase("worker-killed")
    started = time.monotonic()
    for kill in range(plan.kills):
        _sleep_until(started + kill * plan.worker_killed / plan.kills)
        victim = running.gunicorn.kill_worker()
        report.killed.append(victim)
        report.recovery[f"worker {victim} replaced"] = _respawn(running, victim, plan.give_up)
    _sleep_until(started + plan.worker_killed)

    load.set_phase("origin-hang")
    load.hang_clients = plan.hang_clients
    time.sleep(plan.origin_hang)
    load.hang_clients = 0

    load.set_phase("checkpoint")
    checkpoint = time.monotonic()
    before = {o.created for o in list(load.outcomes) if o.created and o.done < checkpoint}
    _check_storage(running, report, "checkpoint", before)

    load.set_phase("storage-stopped")
    running.moto.stop()
    time.sleep(plan.stopped)
    running.moto.start()
    load.mix.forget()
    load.set_phase("after-restart")
    _recovery(running, load, report, "after restart")
    restarted = load.phase_started[-1][1]
    acknowledged = [o for o in list(load.outcomes) if o.created]
    report.unverified = len(
        {o.created for o in acknowledged if checkpoint <= o.done < restarted}
        - {o.created for o in acknowledged if o.done < checkpoint}
    )
    _sleep_until_phase_lasted(load, plan.after_restart)

    load.set_phase("steady")
    time.sleep(plan.steady)
    load.set_phase("stopping")


def _recovery(running: Stack, load: Load, report: FaultReport, when: str) -> None:
    """Time from the dependency returning to the first 200 /readyz, and to the first 201 POST."""
    back = load.phase_started[-1][1]
    probe = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=10))

    def ready() -> bool:
        return probe.request("GET", f"{running.base}/readyz").status == 200

    try:
        wait_until(ready, report.plan.give_up, f"/readyz 200 {when}")
        report.recovery[f"/readyz 200 {when}"] = time.monotonic() - back
    except RuntimeError:
        report.recovery[f"/readyz 200 {when}"] = None

    def posted() -> bool:
        return any(
            o.status == 201 and o.op in POSTS and o.sent >= back for o in list(load.outcomes)
        )

    try:
        wait_until(posted, report.plan.give_up, f"a 201 POST {when}")
        first = min(
            o.done
            for o in list(load.outcomes)
            if o.status == 201 and o.op in POSTS and o.sent >= back
        )
        report.recovery[f"first 201 POST sent {when}"] = first - back
    except RuntimeError:
        report.recovery[f"first 201 POST sent {when}"] = None


def _respawn(running: Stack, victim: int, give_up: float) -> float | None:
    def replaced() -> bool:
        workers = running.gunicorn.workers()
        return victim not in workers and len(workers) == WORKERS

    try:
        return wait_until(replaced, give_up, f"worker {victim} replaced")
    except RuntimeError:
        return None


def _check_storage(running: Stack, report: FaultReport, when: str, acknowledged: set[str]) -> None:
    client = running.moto.client()
    env = running.gunicorn.env
    storage = StorageSettings.from_env(env)
    checked, problems = check_buckets(client, storage.incoming_bucket, storage.processed_bucket)
    lost = check_paths(urllib3.PoolManager(retries=False), running.base, acknowledged)
    report.objects_checked[when] = checked
    report.paths_checked[when] = len(acknowledged)
    report.lost[when] = len(lost)
    report.failures += [f"{when}: damaged: {problem}" for problem in problems]
    report.failures += [f"{when}: lost: {problem}" for problem in lost]


def _judge(report: FaultReport) -> None:
    """Turn every requirement the run broke into a line of `failures`."""
    fail = report.failures.append
    for phase in report.phases:
        sent = [o for o in report.outcomes if o.phase_done == phase]
        bad = Counter(o.status for o in sent if o.status >= 500 and o.status not in (502, 503))
        for status, count in sorted(bad.items()):
            fail(f"{phase}: {count} answers of {status}")
        unclear = [o for o in sent if o.status in (502, 503) and not o.json_error]
        if unclear:
            fail(
                f"{phase}: {len(unclear)} 502/503 answers without a JSON message, e.g. {unclear[0].detail!r}"
            )
        damaged = [o for o in sent if not o.intact]
        if damaged:
            fail(f"{phase}: {len(damaged)} GET bodies did not hash to their names")
        if phase in PHASES_BEFORE_RESTART:
            missing = [o for o in sent if o.status == 404]
            if missing:
                fail(f"{phase}: {len(missing)} answers of 404 while nothing was lost yet")
    for phase in STRICT_PHASES:
        within = [o for o in report.outcomes if o.phase == phase == o.phase_done]
        other = Counter(o.status for o in within if o.status not in (200, 201, 304))
        if other:
            fail(f"{phase}: answers other than 2xx/304 with nothing broken: {dict(other)}")
    hangs = Counter(o.status for o in report.outcomes if o.op == "hang")
    if not hangs or set(hangs) != {502}:
        fail(f"origin-hang: the hanging origin's downloads answered {dict(hangs)}, not only 502")
    hang = [o for o in report.outcomes if o.phase == "origin-hang" == o.phase_done]
    others = Counter(o.status for o in hang if o.op != "hang" and o.status not in (200, 201, 304))
    if others:
        fail(f"origin-hang: other clients got {dict(others)} while one origin hung")
    for phase in ("storage-paused", "storage-stopped"):
        if not any(o.status == 503 for o in report.outcomes if o.phase_done == phase):
            fail(f"{phase}: no 503 at all; the fault did not bite")
    resets = sum(o.status == RESET for o in report.outcomes if o.phase_done == "worker-killed")
    # A kill breaks the connections the worker held, busy or queued: at most one per client.
    if resets > report.plan.kills * report.plan.clients:
        fail(f"worker-killed: {resets} broken connections, more than the killed workers held")
    for what, seconds in report.recovery.items():
        if seconds is None:
            fail(f"no recovery: {what} did not happen within {report.plan.give_up:g}s")
        elif report.plan.recovery_target is not None and seconds > report.plan.recovery_target:
            fail(f"slow recovery: {what} took {seconds:.1f}s")
    if report.unhandled_logged:
        fail(f"{report.unhandled_logged} unhandled errors in the gunicorn log")


def _total(plan: Plan) -> float:
    return (
        plan.baseline
        + plan.paused
        + plan.after_resume
        + plan.worker_killed
        + plan.origin_hang
        + plan.stopped
        + plan.after_restart
        + plan.steady
    )


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _sleep_until_phase_lasted(load: Load, seconds: float) -> None:
    _sleep_until(load.phase_started[-1][1] + seconds)


def _seconds(value: float | None) -> str:
    return "did not happen" if value is None else f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the long form (about 2.5 min)")
    args = parser.parse_args()
    report = run(FULL if args.full else SHORT)
    print(report.text())
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
