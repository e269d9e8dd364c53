"""The Ingress translation behaves as ingress-nginx does, checked on a real nginx."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3
from ingress_nginx import Certificate, Listeners, nginx_conf
from nginx_server import NginxServer

from tests.servers import serving
from tests.service.fetch_origin import SERVER_PEM, tls_context

PREFIX = "nginx.ingress.kubernetes.io/"


class _Echo(BaseHTTPRequestHandler):
    """Answers with the path it was asked for, so a test sees what nginx forwarded."""

    def do_GET(self) -> None:
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def ingress(
    host: str | None,
    paths: list[tuple[str, str]],
    annotations: dict[str, str] | None = None,
    tls_secret: str | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": path,
                    "pathType": path_type,
                    "backend": {"service": {"name": "echo", "port": {"number": 80}}},
                }
                for path, path_type in paths
            ]
        }
    }
    if host:
        rule["host"] = host
    spec: dict[str, Any] = {"rules": [rule]}
    if tls_secret:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    return {
        "metadata": {"annotations": {PREFIX + k: v for k, v in (annotations or {}).items()}},
        "spec": spec,
    }


INGRESSES = [
    ingress(
        "plain.test",
        [("/api", "Prefix"), ("/exact", "Exact"), ("/files", "ImplementationSpecific")],
    ),
    # Two Ingresses on one host, one with use-regex: the regex reaches the other's path too.
    ingress(
        "shared.test",
        [("/sitemaps(/|$)(.*)", "ImplementationSpecific")],
        {"use-regex": "true", "rewrite-target": "/bucket-1/$2"},
    ),
    ingress("shared.test", [("/processed", "Prefix")]),
    ingress(None, [("/", "Prefix")]),
]


TLS_INGRESSES = [
    ingress(
        "secure.test",
        [("/sitemaps(/|$)(.*)", "ImplementationSpecific")],
        {"use-regex": "true", "rewrite-target": "/bucket-1/$2"},
        tls_secret="secure-tls",
    ),
    # What cert-manager adds for an HTTP-01 challenge: same host, no tls, no annotations.
    ingress("secure.test", [("/.well-known/acme-challenge/token-1", "ImplementationSpecific")]),
    ingress("optout.test", [("/", "Prefix")], {"ssl-redirect": "false"}, tls_secret="secure-tls"),
]


@dataclass
class Nginx:
    http: urllib3.HTTPConnectionPool
    https_port: int
    ca: Path | None


def run_nginx(
    ingresses: list[dict[str, Any]], certificates: dict[str, Certificate], ca: Path | None = None
) -> Iterator[Nginx]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _Echo)) as echo:
        nginx = NginxServer()
        try:
            nginx.start(
                nginx_conf(
                    ingresses,
                    upstreams={"echo": f"127.0.0.1:{echo.server_address[1]}"},
                    certificates=certificates,
                    listeners=Listeners(nginx.http_port, nginx.https_port),
                    runtime_dir=nginx.directory,
                )
            )
            http = urllib3.HTTPConnectionPool(
                "127.0.0.1", nginx.http_port, retries=False, timeout=10
            )
            yield Nginx(http, nginx.https_port, ca)
        finally:
            nginx.remove()


@pytest.fixture(scope="module")
def routes(nginx_available: None) -> Iterator[urllib3.HTTPConnectionPool]:
    for nginx in run_nginx(INGRESSES, {}):
        yield nginx.http


@pytest.fixture(scope="module")
def tls_routes(nginx_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    directory = tmp_path_factory.mktemp("tls")
    _, ca = tls_context(directory, "secure.test", "optout.test")
    certificate = Certificate(directory / SERVER_PEM, directory / SERVER_PEM)
    yield from run_nginx(TLS_INGRESSES, {"secure-tls": certificate}, ca)


def forwarded(pool: urllib3.HTTPConnectionPool, host: str, path: str) -> str | int:
    """The path the backend saw, or nginx's own status when it did not forward."""
    response = pool.request("GET", path, headers={"Host": host})
    if response.status == 200:
        return str(response.data.decode())
    return int(response.status)


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("plain.test", "/api", "/api"),
        ("plain.test", "/api/v1", "/api/v1"),
        ("plain.test", "/apix", 404),  # Prefix matches whole path elements
        ("plain.test", "/exact", "/exact"),
        ("plain.test", "/exact/more", 404),
        ("plain.test", "/filesystem", "/filesystem"),  # ImplementationSpecific: a plain prefix
        ("plain.test", "/", 404),  # the default backend
        ("shared.test", "/sitemaps/sitemap.xml", "/bucket-1/sitemap.xml"),
        ("shared.test", "/sitemaps", "/bucket-1/"),
        ("shared.test", "/SITEMAPS/a.xml.gz", "/bucket-1/a.xml.gz"),  # regexes ignore case
        ("shared.test", "/processed/abc", "/processed/abc"),
        # ingress-nginx applies one Ingress's use-regex to every path of its host: the other
        # Ingress's annotation turned this Prefix into a bare regex.
        ("shared.test", "/processedXYZ", "/processedXYZ"),
        ("anything.test", "/whatever", "/whatever"),  # a rule without host: the default server
    ],
)
def test_paths_route_as_ingress_nginx_routes_them(
    routes: urllib3.HTTPConnectionPool, host: str, path: str, expected: str | int
) -> None:
    assert forwarded(routes, host, path) == expected


def test_tls_hosts_redirect_plain_http_but_not_acme_challenges(tls_routes: Nginx) -> None:
    def plain(host: str, path: str) -> tuple[int, str | None]:
        response = tls_routes.http.request("GET", path, headers={"Host": host}, redirect=False)
        return response.status, response.headers.get("Location")

    assert plain("secure.test", "/sitemaps/a.xml") == (308, "https://secure.test/sitemaps/a.xml")
    assert plain("secure.test", "/unrouted") == (308, "https://secure.test/unrouted")
    # The solver's path joins the regex host, still matches, and answers over plain HTTP.
    assert forwarded(tls_routes.http, "secure.test", "/.well-known/acme-challenge/token-1") == (
        "/.well-known/acme-challenge/token-1"
    )
    assert forwarded(tls_routes.http, "optout.test", "/page") == "/page"


def test_tls_hosts_serve_the_secrets_certificate_by_sni(tls_routes: Nginx) -> None:
    secure = urllib3.HTTPSConnectionPool(
        "127.0.0.1",
        tls_routes.https_port,
        retries=False,
        timeout=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=str(tls_routes.ca),
        server_hostname="secure.test",
        assert_hostname="secure.test",
    )
    assert forwarded(secure, "secure.test", "/sitemaps/a.xml") == "/bucket-1/a.xml"
