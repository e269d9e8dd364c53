"""The container's command: check the settings, then hand the process over to gunicorn.

gunicorn reads WEB_CONCURRENCY with a bare int() when it is imported, before any config file
runs, so a value such as "many" would otherwise end in a traceback instead of one line.
"""

from __future__ import annotations

import os
import sys

from service.settings import SettingsError, check_all

GUNICORN_ARGS = ["--config", "python:service.gunicorn_conf", "service.app:create_app()"]


def main(argv: list[str]) -> None:
    try:
        check_all()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    os.execv(gunicorn, [gunicorn, *argv, *GUNICORN_ARGS])  # noqa: S606 (fixed program, no shell)


if __name__ == "__main__":
    main(sys.argv[1:])
