"""Storage paused or gone: the API answers 503 with Retry-After, and recovers by itself."""

from __future__ import annotations

import pytest
from api_support import Api, OriginServer, error_of

pytestmark = pytest.mark.timeout(120)


def assert_unavailable(api: Api, method: str, path: str, **kwargs) -> None:
    response = api.request(method, path, **kwargs)
    assert response.status == 503, response.data
    assert int(response.headers["Retry-After"]) > 0
    assert "Storage" in error_of(response)


def test_paused_storage_is_503_then_recovers(own_api: Api, own_s3_server, origin: OriginServer):
    stored = own_api.upload(origin.url("photo.jpg"))
    own_s3_server.pause()
    try:
        assert_unavailable(own_api, "GET", "/readyz")
        assert_unavailable(own_api, "GET", stored)
        assert_unavailable(own_api, "POST", "/incoming", json={"url": origin.url("photo.png")})
        assert_unavailable(own_api, "POST", "/processed", json={"path": stored})
        assert own_api.get("/healthz").status == 200  # liveness does not depend on storage
    finally:
        own_s3_server.resume()
    assert own_api.get("/readyz").status == 200
    assert own_api.get(stored).status == 200
    assert own_api.process(stored).startswith("/processed/")


def test_restarted_empty_storage_gets_its_buckets_back(
    own_api: Api, own_s3_server, origin: OriginServer
):
    stored = own_api.upload(origin.url("photo.jpg"))
    own_s3_server.stop()
    assert_unavailable(own_api, "GET", "/readyz")
    assert_unavailable(own_api, "GET", stored)
    assert_unavailable(own_api, "POST", "/incoming", json={"url": origin.url("photo.jpg")})

    own_s3_server.start()  # empty: no buckets, no objects
    assert own_api.get(stored).status == 404
    assert own_api.upload(origin.url("photo.jpg")) == stored  # buckets made again on the way
    assert own_api.get("/readyz").status == 200
    assert own_api.process(stored).startswith("/processed/")


def test_restarted_storage_recovers_through_readyz(own_api: Api, own_s3_server):
    own_s3_server.stop()
    own_s3_server.start()
    response = own_api.get("/readyz")
    assert response.status == 200
    assert response.json() == {"status": "ready"}


def test_app_starts_while_storage_is_down(own_s3_server, origin: OriginServer):
    from api_support import api_env, serve

    own_s3_server.stop()
    servers = serve(api_env(own_s3_server.env()))
    api = next(servers)
    try:
        assert api.get("/healthz").status == 200
        assert_unavailable(api, "GET", "/readyz")
        own_s3_server.start()
        assert api.get("/readyz").status == 200
        assert api.upload(origin.url("photo.png")).startswith("/incoming/")
    finally:
        servers.close()
