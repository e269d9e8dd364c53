"""The container's command: check the settings, then hand the process over to gunicorn.

gunicorn reads WEB_CONCURRENCY with a bare int() when it is imported, before any config file
runs, so a value such as "many" would otherwise end in a traceback instead of one line.
"""

from __future__ import annotations

import os
import sys

from service.fields import keys_of
from service.settings import (
    API_SETTINGS,
    ServingSettings,
    SettingsError,
    check_all,
    default_text,
    env_name,
    env_text,
)

GUNICORN_ARGS = ["--config", "python:service.gunicorn_conf", "service.app:create_app()"]

USAGE = """\
usage: python -m service.serve [GUNICORN OPTIONS]

Serves the image API (service.app:create_app()) with gunicorn on 0.0.0.0:8080: gevent
workers, settings from service/gunicorn_conf.py. Options given here go to gunicorn before
that config (for example --bind 127.0.0.1:8080).

The settings are read from the environment and checked before gunicorn starts; an invalid
one stops the command with one line that names it (exit code 2). docs/configuration.md
describes each.
"""


def help_text() -> str:
    """The usage line and every setting the API reads, from the settings models."""
    lines = [USAGE]
    for model in API_SETTINGS:
        for info in model.model_fields.values():
            names = keys_of(info)
            also = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
            lines.append(f"  {names[0]}{also}: {info.description}; {default_text(info)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if argv and argv[0] in ("-h", "--help"):
        print(help_text(), end="")
        raise SystemExit(0)
    try:
        check_all()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    arenas = ServingSettings.model_fields["malloc_arena_max"]
    os.environ.setdefault(env_name(ServingSettings, "malloc_arena_max"), env_text(arenas.default))
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    os.execv(gunicorn, [gunicorn, *argv, *GUNICORN_ARGS])  # noqa: S606 (fixed program, no shell)


if __name__ == "__main__":
    main(sys.argv[1:])
