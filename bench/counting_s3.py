"""moto's S3 server with keep-alive, counting the requests and the connections it serves.

Run: .venv/bin/python bench/counting_s3.py PORT
`moto_server` runs on Werkzeug's development server, which closes the connection after every
answer, so every client reconnects for every call there; MinIO keeps connections alive. Here
moto's S3 app is served by one gunicorn worker (threads, keep-alive) instead, so the
clients' connection reuse shows. `GET /_bench/counts` answers the counts so far as JSON:
requests by method and kind, and TCP connections accepted. Loopback only.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers import gthread
from moto.moto_server.werkzeug_app import create_backend_app

COUNTS_PATH = "/_bench/counts"
_lock = threading.Lock()
_requests: Counter[str] = Counter()
_connections = 0
_accepted = gthread.TConn.__init__


def _counted_connection(self: gthread.TConn, *args: Any) -> None:
    global _connections
    with _lock:
        _connections += 1
    _accepted(self, *args)


gthread.TConn.__init__ = _counted_connection  # type: ignore[method-assign]


def _counting(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path == COUNTS_PATH:
            with _lock:
                body = json.dumps({"requests": dict(_requests), "connections": _connections})
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body.encode()]
        kind = "object" if "/" in path.strip("/") else "bucket"
        with _lock:
            _requests[f"{environ['REQUEST_METHOD']} {kind}"] += 1
        return app(environ, start_response)

    return counted


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, port: int) -> None:
        self.port = port
        super().__init__()

    def load_config(self) -> None:
        # One worker: moto keeps its buckets in that process's memory.
        for key, value in {
            "bind": f"127.0.0.1:{self.port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": 32,
            "keepalive": 60,
            "timeout": 120,
            "accesslog": None,
            "control_socket_disable": True,
        }.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Iterable[bytes]]:
        # moto's S3 app itself: its dispatcher between services (moto_server's default)
        # looks the service up again for every request, with file system calls, and its
        # debug mode adds checks. Both cost the S3 server a third of its time per request,
        # which made it the bottleneck that every app waited on alike.
        app = create_backend_app("s3")
        app.debug = False
        return _counting(app)


if __name__ == "__main__":
    _Server(int(sys.argv[1])).run()
