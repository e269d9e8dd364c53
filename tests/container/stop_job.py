"""The sitemap job, with a SIGTERM it sends itself at one exact point: a stop at a point, not a time.

    python -m tests.container.stop_job before|after MODULE:QUALNAME -- JOB ARGUMENTS...
    python -m tests.container.stop_job import MODULE -- JOB ARGUMENTS...

With before or after, the function or method named (for example
`concurrent.futures:ThreadPoolExecutor.submit`) is wrapped: on its first call the process sends
itself SIGTERM right before the call runs, or right after it returns. With import, the signal
goes when the module named starts to be imported, before any of its code runs. The job's
handler then runs there, exactly as when the signal arrives at that moment. The job runs from
its own entry point, as `python -m service.sitemaps JOB ARGUMENTS...` does. Only the tests use it.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.abc
import importlib.machinery
import os
import runpy
import signal
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

MARK = "stop_job: SIGTERM sent"
POINTS = ("before", "after", "import")


def _send(point: str, target: str) -> None:
    print(f"{MARK} {point} {target}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


def _wrap(function: Callable[..., Any], target: str, point: str) -> Callable[..., Any]:
    sent = False

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal sent
        first, sent = not sent, True
        if first and point == "before":
            _send(point, target)
        result = function(*args, **kwargs)
        if first and point == "after":
            _send(point, target)
        return result

    return wrapper


class _OnImport(importlib.abc.MetaPathFinder):
    """Sends SIGTERM when `module` is first looked for; finds nothing itself."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.sent = False

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self.module and not self.sent:
            self.sent = True
            _send("import", fullname)
        return None


def stop_at(point: str, target: str) -> None:
    """Arrange the SIGTERM at `point` of `target` (see the module's docstring)."""
    if point == "import":
        assert target not in sys.modules, f"{target} is imported already"
        sys.meta_path.insert(0, _OnImport(target))
        return
    module_name, _, qualname = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    setattr(owner, name, _wrap(getattr(owner, name), target, point))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.container.stop_job")
    parser.add_argument("point", choices=POINTS, help="where, relative to the target")
    parser.add_argument("target", help="MODULE:QUALNAME of a function, or MODULE for import")
    parser.add_argument("job", nargs=argparse.REMAINDER, help="-- then the job's arguments")
    args = parser.parse_args(argv)
    job = args.job[1:] if args.job[:1] == ["--"] else args.job
    stop_at(args.point, args.target)
    sys.argv = ["python -m service.sitemaps", *job]
    runpy.run_module("service.sitemaps", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
