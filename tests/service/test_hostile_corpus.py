"""Every case of the hostile corpus gets its exact status and error, over real HTTP.

The API runs as deployed (the address guard on) on the session's S3 server. Its origins
are loopback servers that the stubbed internet (`fake_internet`) plays as public hosts;
every connection the API opens is recorded, and a case fails if it reached any address
outside loopback that it had no business with. No packet leaves 127.0.0.0/8.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_support import Api, FakeInternet, OriginServer, api_env, serve
from fetch_origin import OriginServer as MisbehavingOrigin
from hostile_corpus import (
    CORPUS,
    DOWNLOAD_LIMIT,
    FETCH_TIMEOUT,
    IMAGES_HOST,
    IMAGES_IP,
    PIXEL_LIMIT,
    SLOW_HOST,
    SLOW_IP,
    Hostile,
    build_payloads,
)

from tests.servers import serving

PHOTO = "photo.png"


@pytest.fixture(scope="module")
def payloads() -> dict[str, bytes]:
    return build_payloads()


@pytest.fixture(scope="module")
def image_origin(payloads: dict[str, bytes]) -> Iterator[OriginServer]:
    with serving(OriginServer(payloads)) as server:
        yield server


@pytest.fixture(scope="module")
def slow_origin() -> Iterator[MisbehavingOrigin]:
    server = MisbehavingOrigin()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def corpus_api(s3_server: Any) -> Iterator[Api]:
    """The API as deployed, with limits small enough that every bomb is cheap to send."""
    yield from serve(
        api_env(
            s3_server.env(),
            FETCH_ALLOW_PRIVATE_NETWORKS="false",
            FETCH_TIMEOUT_SECONDS=str(FETCH_TIMEOUT),
            MAX_DOWNLOAD_BYTES=str(DOWNLOAD_LIMIT),
            MAX_IMAGE_PIXELS=str(PIXEL_LIMIT),
        )
    )


@pytest.fixture
def internet(
    fake_internet: FakeInternet,
    image_origin: OriginServer,
    slow_origin: MisbehavingOrigin,
    corpus_api: Api,
    s3_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[FakeInternet, list[str]]:
    """The two public origins, and the list of every address the API connects to."""
    fake_internet.names[IMAGES_HOST] = [IMAGES_IP]
    fake_internet.routes[IMAGES_IP] = image_origin.port
    fake_internet.names[SLOW_HOST] = [SLOW_IP]
    fake_internet.routes[SLOW_IP] = slow_origin.port
    ours = {corpus_api.server.server_port, s3_server.port}
    connected: list[str] = []
    stubbed: Callable[..., Any] = socket.socket.connect

    def record(sock: socket.socket, address: Any) -> Any:
        if not (isinstance(address, tuple) and address[1] in ours):
            connected.append(str(address[0]))
        return stubbed(sock, address)

    monkeypatch.setattr(socket.socket, "connect", record)
    return fake_internet, connected


def _fill(text: str, photo: str = "") -> str:
    return (
        text.replace("@IMAGES@", f"http://{IMAGES_HOST}")
        .replace("@SLOW@", f"http://{SLOW_HOST}")
        .replace("@PHOTO_PCT@", "".join(f"%{ord(c):02X}" for c in photo))
        .replace("@PHOTO@", photo)
    )


def _send(
    api: Api,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent byte for byte: no client-side normalising of dots."""
    connection = http.client.HTTPConnection("127.0.0.1", api.server.server_port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _post_json(api: Api, path: str, value: object) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps(value).encode()
    return _send(api, "POST", path, body, {"Content-Type": "application/json"})


def _upload(api: Api, url: str) -> str:
    status, _, data = _post_json(api, "/incoming", {"url": url})
    assert status == 201, data[:300]
    return str(json.loads(data)["path"])


def _allowed(case: Hostile) -> set[str]:
    text = (case.url or "") + (case.body or b"").decode("utf-8", "replace") + case.path
    allowed = set(case.reaches)
    if "@IMAGES@" in text or "@PHOTO" in text or case.then is not None:
        allowed.add(IMAGES_IP)
    if "@SLOW@" in text:
        allowed.add(SLOW_IP)
    return allowed


def _check_error(case: Hostile, headers: dict[str, str], data: bytes) -> None:
    assert headers["Content-Type"] == "application/json", data[:300]
    answer = json.loads(data)
    assert list(answer) == ["error"], answer
    message = answer["error"]
    assert isinstance(message, str)
    assert "Traceback" not in message
    expected = _fill(case.error or "")
    if case.prefix:
        assert message.startswith(expected), message
    else:
        assert message == expected


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_hostile_input_gets_its_exact_answer(
    case: Hostile,
    corpus_api: Api,
    internet: tuple[FakeInternet, list[str]],
    payloads: dict[str, bytes],
) -> None:
    fake, connected = internet
    fake.names.update(case.dns)
    photo = hashlib.sha256(payloads[PHOTO]).hexdigest()
    if "@PHOTO" in case.path + (case.body or b"").decode("utf-8", "replace"):
        _upload(corpus_api, _fill(f"@IMAGES@/{PHOTO}"))

    if case.then is not None:
        assert case.url is not None
        stored = _upload(corpus_api, _fill(case.url))
        if case.then == "process":
            status, headers, data = _post_json(corpus_api, "/processed", {"path": stored})
        else:
            status, headers, data = _send(corpus_api, "GET", stored)
    else:
        body = case.request_body()
        request_headers = dict(case.headers)
        if case.content_type is not None:
            request_headers["Content-Type"] = case.content_type
        status, headers, data = _send(
            corpus_api,
            case.method,
            _fill(case.path, photo),
            None
            if body is None
            else _fill(body.decode("utf-8", "surrogateescape"), photo).encode(
                "utf-8", "surrogateescape"
            ),
            request_headers,
        )

    assert status == case.status, data[:300]
    if case.error is not None:
        _check_error(case, headers, data)
    elif status == 201:
        path = json.loads(data)["path"]
        assert headers["Location"] == path
        if case.then is None and case.url is not None:
            assert path == f"/incoming/{photo}"  # the one public image a redirect leads to
    else:
        assert headers["Content-Type"] == case.served_as
        assert headers["X-Content-Type-Options"] == "nosniff"
        if case.then == "get":
            assert case.url is not None
            assert data == payloads[case.url.rsplit("/", 1)[1]]
        else:
            assert data == payloads[PHOTO]
    stray = [address for address in connected if address not in _allowed(case)]
    assert stray == [], f"connections attempted to {stray}"


def test_the_corpus_is_big_and_its_ids_unique() -> None:
    assert len(CORPUS) >= 60
    assert len({case.id for case in CORPUS}) == len(CORPUS)
