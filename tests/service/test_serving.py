"""The serving stack under attack: slow clients, slow origins, big bodies, server-layer errors.

Each test runs the container command (`python -m service.serve`: gunicorn, gevent workers)
on loopback against moto's S3 server. The bounds are loose liveness bounds ("answered
within 2 s while 300 hostile connections are open"); bench/serving.py measures the p99.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import OriginServer, error_of

from tests.service.fetch_origin import OriginServer as HangingOrigin
from tests.service.serving_support import Served, served, timed_get

HEADER_TIMEOUT = 3
ATTACKERS = 100  # of each kind; bench/serving.py uses 200
LIVENESS_SECONDS = 2.0


def settings(s3: Any, **extra: str) -> dict[str, str]:
    return {
        **s3.env(),
        "FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        "FETCH_TIMEOUT_SECONDS": "2",
        "WEB_CONCURRENCY": "2",
        "HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "BODY_MIN_BYTES_PER_SECOND": "16384",
        "MAX_DOWNLOADS": "2",
        **extra,
    }


@pytest.fixture(scope="module")
def server(s3_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(settings(s3_server), tmp_path_factory.mktemp("serving")) as running:
        yield running


@pytest.fixture(scope="module")
def hanging_origin() -> Iterator[HangingOrigin]:
    origin = HangingOrigin()
    yield origin
    origin.stop()


@pytest.fixture(scope="module")
def stored(server: Served, origin: OriginServer) -> dict[str, str]:
    """An uploaded original and its greyscale version."""
    # Not photo.jpg: other tests count its first conversion in the session.
    answer = server.request("POST", "/incoming", json={"url": origin.url("photo.gif")})
    assert answer.status == 201, answer.data
    incoming = answer.json()["path"]
    answer = server.request("POST", "/processed", json={"path": incoming})
    assert answer.status == 201, answer.data
    return {"incoming": incoming, "processed": answer.json()["path"]}


def _raw(server: Served, data: bytes, read_seconds: float = 5.0) -> bytes:
    """Send `data` on a fresh connection while reading the answer until the server closes."""
    with server.connect() as sock:

        def send() -> None:
            # The server may answer and close before it has taken all of it.
            with contextlib.suppress(OSError):
                sock.sendall(data)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        received = _read_all(sock, read_seconds)
        sender.join(timeout=read_seconds)
        return received


def _read_all(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def _json_answer(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), raw[:300]
    return status, json.loads(body)


class _Dribbler:
    """Hostile connections that each send one more byte now and then, never finishing."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)

    def add(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sockets.append(sock)

    def start(self) -> None:
        self._thread.start()

    def _drip(self) -> None:
        while not self._stop.wait(0.5):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    def closed_by_server(self, seconds: float) -> int:
        """How many of the connections the server has closed within `seconds` from now."""
        deadline = time.monotonic() + seconds
        closed: set[int] = set()
        while time.monotonic() < deadline and len(closed) < len(self.sockets):
            for number, sock in enumerate(self.sockets):
                if number in closed:
                    continue
                try:
                    if sock.recv(65536) == b"":
                        closed.add(number)
                except BlockingIOError:
                    pass
                except OSError:
                    closed.add(number)
            time.sleep(0.1)
        return len(closed)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def test_slow_and_idle_clients_cost_a_connection_not_a_thread(
    server: Served, stored: dict[str, str]
) -> None:
    headers, bodies, idle = _Dribbler(), _Dribbler(), []
    try:
        for _ in range(ATTACKERS):
            sock = server.connect()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            headers.add(sock)
            sock = server.connect()
            sock.sendall(
                b"POST /processed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 60000\r\n\r\n{"
            )
            bodies.add(sock)
            sock = server.connect()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            idle.append(sock)  # kept alive, sending nothing more
        headers.start()
        bodies.start()

        # 300 hostile connections are open: normal clients are still answered at once.
        for _ in range(10):
            for path in ("/healthz", stored["processed"]):
                status, seconds = timed_get(server, path)
                assert status == 200
                assert seconds < LIVENESS_SECONDS, f"{path} took {seconds:.2f} s under attack"

        # Headers must be in within HEADER_TIMEOUT_SECONDS, however slowly they drip.
        assert headers.closed_by_server(HEADER_TIMEOUT + 3) == ATTACKERS
        # 16 KiB/s minimum: the first piece of the body was due after 3 + 1 s (408), and the
        # rest, drained under the header deadline, 3 s later.
        assert bodies.closed_by_server(2 * HEADER_TIMEOUT + 4) == ATTACKERS
    finally:
        headers.close()
        bodies.close()
        for sock in idle:
            sock.close()


def test_a_body_below_the_minimum_rate_gets_408_json(server: Served) -> None:
    started = time.monotonic()
    raw = _raw(
        server,
        b"POST /processed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 60000\r\n\r\n{"path": ',
        read_seconds=2 * HEADER_TIMEOUT + 5,
    )
    # 3 s of grace, then the first 16 KiB were due at 16 KiB/s: 408 after about 4 s, and the
    # connection closed once the rest of the body missed the header deadline, 3 s later.
    assert time.monotonic() - started < 2 * HEADER_TIMEOUT + 3
    status, body = _json_answer(raw)
    assert status == 408
    assert "too slowly" in body["error"]


def test_past_max_connections_a_worker_answers_503_at_once(s3_server: Any, tmp_path: Path) -> None:
    env = settings(s3_server, WEB_CONCURRENCY="1", MAX_CONNECTIONS="20")
    with served(env, tmp_path) as small:
        held = [small.connect() for _ in range(25)]
        try:
            time.sleep(0.5)
            started = time.monotonic()
            raw = _raw(small, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert time.monotonic() - started < LIVENESS_SECONDS
            status, body = _json_answer(raw)
            assert status == 503
            assert b"Retry-After: " in raw
            assert "too many open connections" in body["error"]
        finally:
            for sock in held:
                sock.close()


def test_downloads_past_the_cap_get_503_while_everything_else_goes_on(
    server: Served, stored: dict[str, str], hanging_origin: HangingOrigin
) -> None:
    results: list[int] = []

    def download() -> None:
        answer = server.request("POST", "/incoming", json={"url": hanging_origin.url("/hang")})
        results.append(answer.status)

    stuck = [threading.Thread(target=download, daemon=True) for _ in range(2)]
    for thread in stuck:
        thread.start()
    time.sleep(1.0)  # both are waiting on the origin now (MAX_DOWNLOADS=2)

    started = time.monotonic()
    answer = server.request("POST", "/incoming", json={"url": hanging_origin.url("/hang")})
    assert time.monotonic() - started < LIVENESS_SECONDS
    assert answer.status == 503
    assert answer.headers["Retry-After"]
    assert "downloads are in flight" in error_of(answer)

    for path in ("/healthz", "/readyz", stored["processed"], stored["incoming"]):
        status, seconds = timed_get(server, path)
        assert status == 200
        assert seconds < LIVENESS_SECONDS
    converted = server.request("POST", "/processed", json={"path": stored["incoming"]})
    assert converted.status == 201

    for thread in stuck:
        thread.join(timeout=30)
    assert results == [502, 502]  # the fetch deadline, 3 x FETCH_TIMEOUT_SECONDS


def test_a_chunked_body_over_the_limit_gets_413(server: Served) -> None:
    def chunked(body: bytes) -> bytes:
        pieces = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 8192]), body[i : i + 8192])
            for i in range(0, len(body), 8192)
        )
        return (
            b"POST /processed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + pieces + b"0\r\n\r\n"
        )

    padded = b'{"path": "/incoming/' + b"0" * 64 + b'"}' + b" " * 100_000
    status, body = _json_answer(_raw(server, chunked(padded)))
    assert status == 413
    assert body["error"]
    status, _ = _json_answer(_raw(server, chunked(b"x" * 10 * 1024 * 1024)))
    assert status == 413
    # Within the limit, a chunked body is read in full: an unknown name is a 404.
    status, _ = _json_answer(_raw(server, chunked(b'{"path": "/incoming/' + b"0" * 64 + b'"}')))
    assert status == 404


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400),
        (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    ],
)
def test_errors_of_the_server_layer_are_json(
    server: Served, request_bytes: bytes, status: int
) -> None:
    answered, body = _json_answer(_raw(server, request_bytes))
    assert answered == status
    assert isinstance(body["error"], str)
    assert body["error"]


def test_script_name_and_forwarded_headers_are_not_trusted(server: Served) -> None:
    answer = server.request(
        "GET",
        "/healthz",
        headers={
            "SCRIPT_NAME": "/healthz",
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "X-Request-ID": "untrusted-forwarding",
        },
    )
    assert answer.status == 200
    assert answer.json() == {"status": "ok"}
    logged = [
        line for line in server.log_lines() if line.get("request_id") == "untrusted-forwarding"
    ]
    assert len(logged) == 1  # one line per request: gunicorn's access line is off
    assert logged[0]["remote_addr"] == "127.0.0.1"
    assert logged[0]["path"] == "/healthz"
