"""The service routes: index, probes, the OpenAPI document, metrics and request ids."""

from __future__ import annotations

import json
import logging
import re

import pytest
from api_support import Api, OriginServer, error_of
from openapi_spec_validator import validate

from service.app import create_app
from service.observability import JsonFormatter


def test_index_lists_every_route(api: Api):
    response = api.get("/")
    assert response.status == 200
    routes = {route["path"]: route["methods"] for route in response.json()["routes"]}
    assert routes["/incoming"] == ["POST"]
    assert routes["/processed"] == ["POST"]
    assert routes["/incoming/<name>"] == ["GET"]
    assert routes["/processed/<name>"] == ["GET"]
    assert {"/", "/healthz", "/readyz", "/openapi.json", "/metrics"} <= set(routes)


def test_probes(api: Api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}


def test_openapi_is_valid_and_describes_every_route(api: Api, s3_server):
    response = api.get("/openapi.json")
    assert response.status == 200
    document = response.json()
    validate(document)
    app = create_app({**s3_server.env()})
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in document["paths"], path
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], (method, path)


# Every status the tests provoke, by operation; the document must list each one.
OBSERVED = {
    ("get", "/"): {200},
    ("post", "/incoming"): {201, 400, 403, 408, 413, 415, 422, 502, 503},
    ("get", "/incoming/{name}"): {200, 304, 404, 503},
    ("post", "/processed"): {201, 400, 404, 408, 413, 415, 422, 503},
    ("get", "/processed/{name}"): {200, 304, 404, 503},
    ("get", "/healthz"): {200},
    ("get", "/readyz"): {200, 503},
    ("get", "/openapi.json"): {200},
    ("get", "/metrics"): {200},
}


@pytest.mark.parametrize(("method", "path"), sorted(OBSERVED))
def test_openapi_lists_every_status(api: Api, method: str, path: str):
    documented = api.get("/openapi.json").json()["paths"][path][method]["responses"]
    assert {int(code) for code in documented} == OBSERVED[method, path]


def test_request_id_is_echoed_or_made(api: Api):
    given = api.get("/healthz", headers={"X-Request-ID": "trace-42.a_b"})
    assert given.headers["X-Request-ID"] == "trace-42.a_b"
    made = api.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces" + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", api.get("/healthz").headers["X-Request-ID"])
    assert api.get("/no/such/route").headers["X-Request-ID"]


def test_metrics_count_by_route_not_path(api: Api, origin: OriginServer):
    path = api.process(api.upload(origin.url("photo.jpg")))
    api.get(path)
    api.get("/incoming/" + "1" * 64)
    text = api.get("/metrics").data.decode()
    assert re.search(
        r'^http_requests_total\{method="GET",route="/processed/<name>",status="200"\} \d',
        text,
        re.M,
    )
    assert re.search(r'route="/incoming/<name>",status="404"', text)
    assert re.search(r"^http_request_duration_seconds_bucket\{", text, re.M)
    assert re.search(r'^image_conversion_seconds_count\{format="image/jpeg"\} \d', text, re.M)
    assert "1111111111" not in text  # names never become labels


def test_errors_never_show_a_trace(api: Api):
    for method, path in [("GET", "/%ff%fe"), ("PATCH", "/incoming"), ("GET", "/incoming/%2e%2e")]:
        response = api.request(method, path)
        assert response.status in (404, 405)
        error_of(response)


def test_unexpected_exceptions_are_500_json_without_trace(s3_server, monkeypatch):
    from service import images

    app = create_app(s3_server.env())

    def explode(*_args: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(images, "_converted_before", explode)
    response = app.test_client().post("/processed", json={"path": "/incoming/" + "a" * 64})
    assert response.status_code == 500
    assert response.json == {"error": "Internal server error."}
    assert b"secret" not in response.data


def test_log_lines_are_json_with_request_id(s3_server):
    app = create_app(s3_server.env())
    record = logging.LogRecord("service.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    with app.test_request_context(headers={"X-Request-ID": "abc"}):
        app.preprocess_request()
        line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello you"
    assert line["request_id"] == "abc"
    assert line["level"] == "INFO"
