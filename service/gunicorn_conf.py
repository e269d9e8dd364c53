"""gunicorn settings for the image API: `gunicorn --config python:service.gunicorn_conf ...`.

Settings are checked here, in the master, before any worker starts: a bad one stops the
process with one line that names it. A worker failing in the app factory instead would be
restarted by gunicorn over and over.

Serving: gevent workers (service.gunicorn_worker) accepting from one listening socket per
address, which the master binds before any worker starts (see `listen_on`), and the pod's
budgets (service.admission) in shared memory made here, before the workers are forked.

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
from gunicorn import sock as gunicorn_sock

from service import admission
from service.listeners import who_listens
from service.parent_death import die_with_parent
from service.settings import (
    ApiSettings,
    FetchSettings,
    InheritedSockets,
    ServingSettings,
    SettingsError,
    check_all,
    env_name,
    graceful_stop_seconds,
)

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
# Nobody's X-Forwarded-* or SCRIPT_NAME headers are trusted unless the operator names them.
forwarded_allow_ips = serving.forwarded_allow_ips
# The worker's heartbeat: a worker whose event loop stops this long is replaced.
timeout = 60
# After SIGTERM, requests in flight get as long as the longest one the settings allow.
graceful_timeout = graceful_stop_seconds(FetchSettings.from_env(), ApiSettings.from_env(), serving)
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


def listen_on(host: str, port: int, backlog: int) -> socket.socket:
    """A socket listening on host:port, or one line naming what holds it and a clean exit.

    Without SO_REUSEPORT the address is this server's alone: the kernel refuses it to any
    other socket, so a second server started on it, whoever starts it and however, stops
    here instead of sharing the connections. SO_REUSEADDR only keeps the connections of an
    earlier run, waiting out TIME_WAIT, from blocking a restart.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        holder = who_listens(host, port)
        print(
            f"error: cannot listen on {where}: {error.strerror or error}"
            + (f" by {holder}; stop it" if holder else "; stop what uses it")
            + " or give another --bind",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1) from None
    return sock


def take_addresses(server: Any) -> None:
    """Listen on every TCP address in the master, before any worker, and hand them to gunicorn.

    gunicorn binding them itself would retry a busy address for 5 seconds with a log line
    each time. A unix socket or an inherited file descriptor (systemd, a master being
    replaced) is left to gunicorn.
    """
    addresses = server.cfg.address
    sockets = InheritedSockets.from_env()
    inherited = sockets.gunicorn_fd or sockets.listen_fds
    if inherited or not addresses or not all(isinstance(a, tuple) for a in addresses):
        return
    listening = [listen_on(host, port, server.cfg.backlog) for host, port in addresses]
    fds = [sock.detach() for sock in listening]
    server.LISTENERS = gunicorn_sock.create_sockets(server.cfg, server.log, fds)


def on_starting(server: Any) -> None:
    """Listen on the addresses; start from empty metric files, so no earlier run's counts leak in."""
    take_addresses(server)
    directory = os.environ.get(METRICS_DIR)
    if directory and os.path.isdir(directory):
        for entry in os.listdir(directory):
            path = os.path.join(directory, entry)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def post_fork(server: Any, _worker: object) -> None:
    """A worker dies with its master: none is left serving the address unsupervised."""
    die_with_parent(server.pid)


def child_exit(_server: object, worker: Any) -> None:
    """Drop a dead worker's live gauges (multiprocess mode) and its share of the budgets."""
    admission.forget(worker.pid)
    if os.environ.get(METRICS_DIR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
