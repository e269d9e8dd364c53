"""gunicorn's gevent worker with the API's bounds: a slow or idle client costs a greenlet.

- Headers (and the wait for the next request on a kept-alive connection) must arrive
  within gunicorn's `keepalive`, set to HEADER_TIMEOUT_SECONDS: gevent's worker wraps the
  header read in one deadline, however slowly the bytes drip.
- Past MAX_CONNECTIONS open connections a worker answers 503 at once and closes.
- Errors that gunicorn itself answers (a bad request line, headers too large) are JSON.
- Only sockets, DNS, ssl, select and sleep are patched: threads stay native, so
  conversions run in parallel on them while the worker keeps serving.
"""

from __future__ import annotations

import json
from typing import Any

import gevent
from gevent import monkey
from gevent import socket as gsocket
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

_close_graceful = util.close_graceful

# Connections past the limit still get accepted, answered 503 and closed.
REFUSE_SLOTS = 100
_REFUSE_SECONDS = 1.0
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024


def json_error(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response with the API's JSON body; the connection closes."""
    body = json.dumps({"error": message or reason}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if status == 503:
        head += "Retry-After: 1\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    util.write_nonblock(sock, json_error(status_int, reason, mesg))


def _close_lingering(sock: Any) -> None:
    _close_graceful(sock, timeout=LINGER_SECONDS, max_drain=LINGER_BYTES)


class Worker(GeventWorker):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_limit = int(self.cfg.worker_connections)
        self.worker_connections = self.connection_limit + REFUSE_SLOTS  # the pool's size
        self.open_connections = 0

    def patch(self) -> None:
        monkey.patch_all(thread=False, queue=False)
        listeners: list[Any] = self.sockets  # type: ignore[has-type]
        self.sockets = [
            gsocket.socket(s.FAMILY, gsocket.SOCK_STREAM, fileno=s.sock.detach()) for s in listeners
        ]

    def init_process(self) -> None:
        # gunicorn writes its own error pages through this one function.
        util.write_error = _write_json_error
        # gevent's worker closes at once; with request bytes still unread (a body over the
        # limit, a request line too long) the kernel then resets the connection and the
        # client may never read the answer. gunicorn's other workers linger like this.
        util.close = _close_lingering
        super().init_process()

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        self.open_connections += 1
        try:
            if self.open_connections > self.connection_limit:
                self._refuse(client)
            else:
                super().handle(listener, client, addr)
        finally:
            self.open_connections -= 1

    def _refuse(self, client: Any) -> None:
        message = "The server has too many open connections; try again later."
        with gevent.Timeout(_REFUSE_SECONDS, False):
            client.setblocking(1)
            client.sendall(json_error(503, "Service Unavailable", message))
        util.close(client)
