"""Fixtures: the image API under a real WSGI server, an origin to download from, a fake internet."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_support import (
    Api,
    FakeInternet,
    OriginServer,
    api_env,
    build_images,
    is_ip_literal,
    is_loopback,
    serve,
)

from tests.servers import serving


@pytest.fixture(scope="session")
def images() -> dict[str, bytes]:
    return build_images()


@pytest.fixture(scope="session")
def origin(images: dict[str, bytes]) -> Iterator[OriginServer]:
    with serving(OriginServer(images)) as server:
        yield server


@pytest.fixture(scope="session")
def api(s3_server: Any) -> Iterator[Api]:
    """The API on the session's S3 server, allowed to download from loopback."""
    yield from serve(api_env(s3_server.env()))


@pytest.fixture(scope="session")
def guarded_api(s3_server: Any) -> Iterator[Api]:
    """The API as deployed: the address guard on."""
    yield from serve(api_env(s3_server.env(), FETCH_ALLOW_PRIVATE_NETWORKS="false"))


@pytest.fixture
def own_api(own_s3_server: Any) -> Iterator[Api]:
    """The API on a private S3 server that the test may pause or restart."""
    yield from serve(api_env(own_s3_server.env()))


@pytest.fixture
def fake_internet(monkeypatch: pytest.MonkeyPatch) -> FakeInternet:
    fake = FakeInternet()
    real_getaddrinfo = socket.getaddrinfo
    real_connect: Callable[..., Any] = socket.socket.connect

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in fake.names:
            number = int(port or 0)
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (address, number),
                )
                for address in fake.names[name]
            ]
        if not is_ip_literal(name) and name != "localhost":
            fake.refused.append(("resolve", name))
            raise socket.gaierror(socket.EAI_NONAME, "no such host in the fake internet")
        return real_getaddrinfo(host, port, *args, **kwargs)

    def connect(sock: socket.socket, address: Any) -> Any:
        host = str(address[0])
        if host in fake.routes:
            return real_connect(sock, ("127.0.0.1", fake.routes[host]))
        if not is_loopback(host):
            fake.refused.append(("connect", address))
            raise ConnectionRefusedError(f"the fake internet refuses {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return fake
