"""SIGTERM as an exception, so that a stopped job unwinds through its clean-up and says so."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# The shell's convention for "ended by SIGTERM": 128 + 15.
EXIT_CODE = 128 + signal.SIGTERM


class Stopped(BaseException):
    """SIGTERM arrived. A BaseException, so that no `except Exception` on the way swallows it."""


_held = 0  # how many `stops_held` blocks the main thread is in
_pending = False  # a SIGTERM came during one of them


def _stop(signum: int, frame: FrameType | None) -> None:
    global _pending
    # One stop is enough: a second SIGTERM must not interrupt the clean-up the first started.
    # A handler that does nothing rather than SIG_IGN: a worker process started while this
    # stop is held would inherit SIG_IGN through exec and then outlive its terminate().
    signal.signal(signal.SIGTERM, _stopping_already)
    if _held:
        _pending = True
        return
    raise Stopped


def _stopping_already(signum: int, frame: FrameType | None) -> None:
    """A second SIGTERM: the first one's clean-up is under way."""


@contextmanager
def stops_held() -> Iterator[None]:
    """A SIGTERM inside the block raises Stopped only when the block is done.

    For steps that must not be cut in half, such as starting a worker process: stopped
    half-way, the parent would not know the child it had already forked.
    """
    global _held, _pending
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _pending:
            _pending = False
            raise Stopped


@contextmanager
def sigterm_raises_stopped() -> Iterator[None]:
    """Within the block, SIGTERM raises Stopped in the main thread.

    As PID 1 of a container, a process without a handler never dies of SIGTERM (the kernel
    drops signals whose action is the default), so a stopped Job would wait for SIGKILL.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals (e.g. main() called from a test thread)
        return
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
