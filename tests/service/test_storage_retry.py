"""Storage retries one 5xx answer, as S3 asks of its clients, and no more."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service.settings import StorageSettings
from service.storage import Storage, StorageUnavailableError
from tests.servers import serving


class FlakyS3(BaseHTTPRequestHandler):
    """Answers the first `failures` requests with 500, then says every bucket exists in us-east-1.

    A stand-in for an S3 server's internal error, which moto cannot be made to give on demand.
    """

    failures = 0
    seen = 0
    requests: list[str]

    def do_HEAD(self) -> None:
        self._answer(b"")

    def do_GET(self) -> None:  # minio asks for the bucket's region first
        self._answer(b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>')

    def _answer(self, body: bytes) -> None:
        type(self).seen += 1
        type(self).requests.append(f"{self.command} {self.path}")
        failing = type(self).seen <= type(self).failures
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", str(0 if failing else len(body)))
        self.end_headers()
        if not failing and self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[tuple[type[FlakyS3], Storage]]:
    handler = type("Handler", (FlakyS3,), {"failures": 0, "seen": 0, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    settings = StorageSettings.from_env(
        {
            "MINIO_ENDPOINT": f"127.0.0.1:{server.server_address[1]}",
            "MINIO_ACCESS_KEY": "a",
            "MINIO_SECRET_KEY": "b",
        }
    )
    with serving(server):
        yield handler, Storage(settings, timeout_seconds=2)


def test_one_internal_error_is_retried(flaky: tuple[type[FlakyS3], Storage]) -> None:
    handler, storage = flaky
    handler.failures = 1
    storage.ensure_buckets()
    # the request that got the 500 was sent again, and only once
    assert handler.requests[0] == handler.requests[1] != handler.requests[2]


def test_a_second_internal_error_answers_unavailable(flaky: tuple[type[FlakyS3], Storage]) -> None:
    handler, storage = flaky
    handler.failures = 2
    with pytest.raises(StorageUnavailableError):
        storage.ensure_buckets()
    assert handler.seen == 2
