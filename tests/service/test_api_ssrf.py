"""The API maps the downloader's refusals to JSON answers, with the address guard on.

Refusals of addresses outside loopback are tested through stubbed name resolution and
connections (the `fake_internet` fixture): no packet may leave 127.0.0.0/8.
"""

from __future__ import annotations

import pytest
from api_support import Api, FakeInternet, OriginServer, error_of

PUBLIC = "93.184.216.34"  # plays a public web server; connections to it go to the origin


@pytest.fixture
def public_origin(fake_internet: FakeInternet, origin: OriginServer) -> str:
    """The origin, as if it were a public host named images.example."""
    fake_internet.names["images.example"] = [PUBLIC]
    fake_internet.routes[PUBLIC] = origin.port
    return f"http://images.example:{origin.port}"


def test_public_origin_is_allowed(guarded_api: Api, public_origin: str, fake_internet):
    response = guarded_api.post("/incoming", {"url": f"{public_origin}/photo.png"})
    assert response.status == 201
    assert fake_internet.refused == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/photo.png",
        "http://localhost:{port}/photo.png",
        "http://[::1]:{port}/photo.png",
        "http://0x7f000001:{port}/photo.png",
        "http://[::ffff:127.0.0.1]:{port}/photo.png",
    ],
)
def test_loopback_is_refused(guarded_api: Api, origin: OriginServer, url: str):
    seen = len(origin.requests)
    response = guarded_api.post("/incoming", {"url": url.format(port=origin.port)})
    assert response.status == 403
    assert "loopback" in error_of(response)
    assert len(origin.requests) == seen  # refused before connecting


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link-local"),
        ("10.0.0.7", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
    ],
)
def test_names_resolving_to_internal_addresses_are_refused(
    guarded_api: Api, fake_internet: FakeInternet, address: str, reason: str
):
    fake_internet.names["internal.example"] = [address]
    response = guarded_api.post("/incoming", {"url": "http://internal.example/latest/meta-data/"})
    assert response.status == 403
    message = error_of(response)
    assert address in message
    assert reason in message
    assert fake_internet.refused == []  # no connection was even attempted


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://127.0.0.1:{port}/photo.png", "loopback"),
        ("http://metadata.example/computeMetadata/v1/", "link-local"),
    ],
)
def test_redirects_to_internal_addresses_are_refused(
    guarded_api: Api,
    origin: OriginServer,
    public_origin: str,
    fake_internet: FakeInternet,
    target: str,
    reason: str,
):
    fake_internet.names["metadata.example"] = ["169.254.169.254"]
    seen = len(origin.requests)
    url = f"{public_origin}/redirect?to={target.format(port=origin.port)}"
    response = guarded_api.post("/incoming", {"url": url})
    assert response.status == 403
    assert reason in error_of(response)
    assert fake_internet.refused == []
    assert len(origin.requests) == seen + 1  # the redirect only, never its target


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "gopher://127.0.0.1/", "http://user:pw@images.example/", "//x/y.png"],
)
def test_urls_that_are_not_http_are_400(guarded_api: Api, url: str):
    response = guarded_api.post("/incoming", {"url": url})
    assert response.status == 400
    error_of(response)
