"""gunicorn settings for the image API: `gunicorn --config python:service.gunicorn_conf ...`.

Settings are checked here, in the master, before any worker starts: a bad one stops the
process with one line that names it. A worker failing in the app factory instead would be
restarted by gunicorn over and over.

Serving: gevent workers (service.gunicorn_worker), one listening socket per worker
(SO_REUSEPORT) so the kernel spreads connections over all of them, and the pod's budgets
(service.admission) in shared memory made here, before the workers are forked.

Metrics: with more than one worker, each worker counts for itself, so prometheus_client's
multiprocess mode is used. Set PROMETHEUS_MULTIPROC_DIR to an empty writable directory (an
emptyDir volume in Kubernetes); when it is unset and there are several workers, a fresh
temporary directory is made here. /metrics then sums over every worker.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from typing import Any

from gunicorn import glogging

from service import admission
from service.settings import ServingSettings, SettingsError, check_all, env_name

try:
    check_all()
    serving = ServingSettings.from_env()
    workers = serving.web_concurrency
except SettingsError as error:
    print(f"error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None

bind = ["0.0.0.0:8080"]  # the container port; the Service decides who reaches it
# A connection costs a greenlet; a download or a slow client never holds a thread.
worker_class = "service.gunicorn_worker.Worker"
worker_connections = serving.max_connections
# The gevent worker reads a request's headers, or waits for the next request of a kept-alive
# connection, within this one deadline.
keepalive = serving.header_timeout_seconds
# Each worker listens on its own socket: the kernel spreads connections over all of them.
reuse_port = True
# Nobody's X-Forwarded-* or SCRIPT_NAME headers are trusted unless the operator names them.
forwarded_allow_ips = serving.forwarded_allow_ips
# The worker's heartbeat: a worker whose event loop stops this long is replaced.
timeout = 60
graceful_timeout = 30
# No control socket: the container's user may have no home to put it in, and nothing uses it.
control_socket_disable = True
# The app logs one JSON line per request itself, with the request id.
accesslog = None


class NoAccessLog(glogging.Logger):
    """gunicorn's logger without its access log, which the app's own line per request replaces.

    With a logconfig_dict, gunicorn's logger builds every request's access-log fields, about
    a tenth of a small request's time, before the silenced "gunicorn.access" logger drops them.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


logger_class = NoAccessLog
errorlog = "-"
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (heartbeat files)
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    # By name: prometheus_client must first be imported after PROMETHEUS_MULTIPROC_DIR is set.
    "formatters": {"json": {"()": "service.observability.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    # gunicorn merges this dict shallowly into its defaults, whose root logger names their handler.
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # The app's own line per request carries the request id; gunicorn's would repeat it.
        "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}

admission.share()

METRICS_DIR = env_name(ServingSettings, "prometheus_multiproc_dir")
if workers > 1 and not serving.prometheus_multiproc_dir:
    os.environ[METRICS_DIR] = tempfile.mkdtemp(prefix="prometheus-")


# The master's hold on each TCP address it serves; see hold_addresses.
_held: list[socket.socket] = []


def hold_addresses(addresses: list[Any]) -> None:
    """Bind each TCP address in the master, with SO_REUSEPORT, for as long as it runs.

    With reuse_port gunicorn binds only in the workers. A worker that cannot bind exits, and
    the master starts another forever: never ready, never stopped. Held here, a busy address
    stops the start with one line instead. And no other socket (a client's ephemeral port
    included) can take the address while a worker is being replaced.
    The held sockets never listen, so the kernel gives connections only to the workers.
    """
    for address in addresses:
        if not isinstance(address, tuple):
            continue  # a unix socket or an inherited fd: nothing to race for
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            sock.close()
            where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            print(
                f"error: cannot listen on {where}: {error.strerror or error}; "
                "stop what uses it or give another --bind",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(1) from None
        _held.append(sock)


def on_starting(server: Any) -> None:
    """Hold the addresses; start from empty metric files, so no earlier run's counts leak in."""
    hold_addresses(server.cfg.address)
    directory = os.environ.get(METRICS_DIR)
    if directory and os.path.isdir(directory):
        for entry in os.listdir(directory):
            path = os.path.join(directory, entry)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def child_exit(_server: object, worker: Any) -> None:
    """Drop a dead worker's live gauges (multiprocess mode) and its share of the budgets."""
    admission.forget(worker.pid)
    if os.environ.get(METRICS_DIR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
