"""Fixtures of the container test: the image built once, the dev stack's pod specs, a TLS API stand-in."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.container import engine
from tests.container.engine import REPORT
from tests.container.pod import PodContainer, ServiceAccount
from tests.infra.stack_render import Rendered, Variant, render
from tests.servers import serving
from tests.sitemaps.conftest import TOKEN, FakeKube, _handler


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.section("container image")
        for key, value in REPORT.items():
            terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture(scope="session")
def built() -> engine.Build:
    """The root Dockerfile built once per session (warm runs reuse the base and the layers)."""
    reason = engine.missing_reason()
    if reason is not None:
        pytest.skip(reason)
    build = engine.build()
    REPORT["build"] = f"{build.seconds:.0f} s (buildah build --layers)"
    return build


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The dev stack as the Pulumi program renders it under mocks."""
    rendered = render(Variant("dev"), tmp_path_factory.mktemp("dev-stack"))
    assert rendered.error is None, rendered.error
    return rendered


@pytest.fixture(scope="session")
def api_spec(dev: Rendered) -> PodContainer:
    return PodContainer.from_workload(dev.one("Deployment"), dev.of_kind("Secret"))


@pytest.fixture(scope="session")
def job_spec(dev: Rendered) -> PodContainer:
    return PodContainer.from_workload(dev.one("CronJob"), dev.of_kind("Secret"))


@dataclass
class ClusterApi:
    """The sitemaps Ingress behind HTTPS, and the service-account files a pod would see."""

    fake: FakeKube
    port: int
    account: ServiceAccount


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the API stand-in, valid for the address pods reach it at."""
    key, cert = directory / "tls.key", directory / "tls.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kubernetes",
            "-addext",
            f"subjectAltName=IP:{engine.HOST_LOOPBACK},IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, cert


@pytest.fixture
def cluster_api(job_spec: PodContainer, tmp_path: Path) -> Iterator[ClusterApi]:
    """The suite's Kubernetes API stand-in over HTTPS, for the Ingress the job's env names.

    The pod's projected service-account volume gets a token and, as the cluster's CA, the
    stand-in's own certificate.
    """
    env = job_spec.env()
    fake = FakeKube(namespace=env["SITEMAP_NAMESPACE"], name=env["SITEMAP_INGRESS"])
    key, cert = _certificate(tmp_path)
    account = ServiceAccount(TOKEN, cert.read_bytes())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = int(server.server_address[1])
    fake.host = f"https://127.0.0.1:{port}"
    with serving(server):
        yield ClusterApi(fake, port, account)
