"""The container's command: check the settings, then hand the process over to gunicorn.

gunicorn reads WEB_CONCURRENCY with a bare int() when it is imported, before any config file
runs, so a value such as "many" would otherwise end in a traceback instead of one line.
"""

from __future__ import annotations

import os
import sys

from service.settings import SettingsError, check_all

GUNICORN_ARGS = ["--config", "python:service.gunicorn_conf", "service.app:create_app()"]
# glibc: two malloc arenas rather than eight per core, so memory freed after a big
# conversion is not left spread over arenas that never shrink.
MALLOC_DEFAULTS = {"MALLOC_ARENA_MAX": "2"}

HELP = """\
usage: python -m service.serve [GUNICORN OPTIONS]

Serves the image API (service.app:create_app()) with gunicorn on 0.0.0.0:8080: gevent
workers (WEB_CONCURRENCY of them), settings from service/gunicorn_conf.py. Options given
here go to gunicorn before that config (for example --bind 127.0.0.1:8080).

The settings are read from the environment and checked before gunicorn starts; an invalid
one stops the command with one line that names it (exit code 2). Required:
  MINIO_ENDPOINT, MINIO_ACCESS_KEY, MINIO_SECRET_KEY
Optional (see the README's settings table for defaults):
  MINIO_SECURE, MINIO_REGION, INCOMING_BUCKET, PROCESSED_BUCKET, MAX_DOWNLOAD_BYTES,
  MAX_IMAGE_PIXELS, FETCH_TIMEOUT_SECONDS, FETCH_ALLOW_PRIVATE_NETWORKS,
  STORAGE_TIMEOUT_SECONDS, WEB_CONCURRENCY, HEADER_TIMEOUT_SECONDS, BODY_MIN_BYTES_PER_SECOND,
  MAX_CONNECTIONS, MAX_DOWNLOADS, MEMORY_LIMIT_BYTES, CONVERSION_TIMEOUT_SECONDS,
  FORWARDED_ALLOW_IPS, SITEMAP_INDEX_URL, PROMETHEUS_MULTIPROC_DIR
"""


def main(argv: list[str]) -> None:
    if argv and argv[0] in ("-h", "--help"):
        print(HELP, end="")
        raise SystemExit(0)
    try:
        check_all()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    for name, value in MALLOC_DEFAULTS.items():
        os.environ.setdefault(name, value)
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    os.execv(gunicorn, [gunicorn, *argv, *GUNICORN_ARGS])  # noqa: S606 (fixed program, no shell)


if __name__ == "__main__":
    main(sys.argv[1:])
