"""Run a job elsewhere and stop waiting for it at a deadline, whichever server runs the app.

Under gunicorn's gevent worker a blocking wait would stop every request of the worker, so
CPU work goes to a native thread of gevent's pool and I/O to a greenlet, and the caller
yields while it waits. Under a threaded server (the tests' werkzeug) plain threads do.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

T = TypeVar("T")

CPU_THREADS = 4


class DeadlineExceededError(TimeoutError):
    """The job did not finish in time; it goes on in the background, unobserved."""


def cpu(job: Callable[[], T], seconds: float) -> T:
    """`job`'s result, computed on a native thread (Pillow and zlib release the GIL)."""
    hub = gevent_hub()
    if hub is not None:
        return _wait_gevent(hub.threadpool.spawn(job), seconds)
    future = _executor().submit(job)
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        raise DeadlineExceededError from None


def io(job: Callable[[], T], seconds: float) -> T:
    """`job`'s result, for a job that waits on the network (name resolution, say)."""
    hub = gevent_hub()
    if hub is not None:
        import gevent

        return _wait_gevent(gevent.spawn(job), seconds)
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, job()))
        except BaseException as error:
            outcome.append((False, error))

    thread = threading.Thread(target=run, name="offload-io", daemon=True)
    thread.start()
    thread.join(max(seconds, 0))
    if not outcome:
        raise DeadlineExceededError
    ok, value = outcome[0]
    if not ok:
        raise value
    result: T = value
    return result


def gevent_hub() -> Any:
    """The gevent hub when gevent has patched the sockets of this process, else None."""
    if "gevent" not in sys.modules:
        return None
    from gevent import get_hub, monkey

    return get_hub() if monkey.is_module_patched("socket") else None


def _wait_gevent(waitable: Any, seconds: float) -> Any:
    import gevent

    try:
        return waitable.get(timeout=max(seconds, 0))
    except gevent.Timeout:
        raise DeadlineExceededError from None


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=CPU_THREADS, thread_name_prefix="cpu")
        return _pool
