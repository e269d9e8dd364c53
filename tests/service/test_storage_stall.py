"""Storage that sends an object's headers and then stalls: a 503, not gunicorn's HTML 500.

Found by bench/faults.py: moto paused between the headers and the body of a GET made the
first body chunk fail inside the WSGI server, which answered with its own HTML 500.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service.settings import StorageSettings
from service.storage import Storage, StorageUnavailableError
from tests.servers import serving

pytestmark = pytest.mark.timeout(60)

NAME = "a" * 64
LOCATION = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></LocationConstraint>'
)


class _StallingS3(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if "location" in self.path:
            self._answer(LOCATION, "application/xml")
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.flush()
        self.server.release.wait(30)  # the body never comes while the test runs

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    release = threading.Event()


@pytest.fixture
def stalling_s3() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _StallingS3)
    server.release = threading.Event()
    with serving(server):
        yield int(server.server_address[1])
        server.release.set()


def test_a_body_that_never_starts_is_storage_unavailable(stalling_s3: int):
    settings = StorageSettings(
        endpoint=f"127.0.0.1:{stalling_s3}",
        access_key="key",
        secret_key="secret",
        secure=False,
        incoming_bucket="incoming",
        processed_bucket="processed",
    )
    storage = Storage(settings, timeout_seconds=0.5)
    with pytest.raises(StorageUnavailableError, match="broke off"):
        storage.open("incoming", NAME)
