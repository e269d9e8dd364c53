"""A child process that goes when its parent goes, by Linux's PR_SET_PDEATHSIG."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, signum: int = signal.SIGKILL) -> None:
    """Have Linux send `signum` to this process when `parent`, its parent, dies.

    Called in the child after fork (and kept across exec). A parent that died before the call
    would never send it, so the process then sends it to itself. Elsewhere than on Linux
    nothing happens.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)
