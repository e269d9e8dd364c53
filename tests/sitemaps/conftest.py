"""Fixtures of the sitemap tests: a Kubernetes API stand-in with the real server's semantics, storage."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
import yaml
from lightkube import KubeConfig
from lightkube.config.models import Cluster, User
from minio import Minio

from service.settings import StorageSettings
from service.sitemaps import storage
from service.sitemaps.ingress import LIVE_LABEL, REWRITE_ANNOTATION, IngressSwitch
from tests.conftest import S3Server
from tests.servers import serving

if TYPE_CHECKING:
    from tests.sitemaps.gateway_api import FakeHTTPRoute

PATH = "/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}"
TOKEN = "test-token"  # the bearer token the stand-in accepts
HOLD_SECONDS = 120.0  # the longest a held request waits (FakeKube.hold_after)


def status(code: int, reason: str, message: str) -> dict[str, object]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass
class FakeKube:
    """One Ingress in one namespace; verbs listed in `forbidden` answer 403."""

    namespace: str = "web"
    name: str = "sitemaps"
    # None: as Pulumi creates it, before any publication has set the label and the rewrite.
    live: str | None = None
    resource_version: int = 1
    exists: bool = True
    forbidden: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    host: str = ""
    # Requests past this many wait until `released` is set, or HOLD_SECONDS (None: none wait).
    hold_after: int | None = None
    released: threading.Event = field(default_factory=threading.Event)
    # Requests that reached the server, held ones included (`requests` lists them once answered).
    arrived: int = 0

    def ingress(self) -> dict[str, object]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": str(self.resource_version),
                "labels": {"app.kubernetes.io/name": "sitemaps"}
                | ({LIVE_LABEL: self.live} if self.live else {}),
                "annotations": {"nginx.ingress.kubernetes.io/use-regex": "true"}
                | ({REWRITE_ANNOTATION: f"/{self.live}/$2"} if self.live else {}),
            },
            "spec": {
                "rules": [
                    {
                        "http": {
                            "paths": [
                                {
                                    "path": "/sitemaps(/|$)(.*)",
                                    "pathType": "ImplementationSpecific",
                                    "backend": {
                                        "service": {"name": "minio", "port": {"number": 9000}}
                                    },
                                }
                            ]
                        }
                    }
                ]
            },
        }

    def handle(
        self, verb: str, path: str, content_type: str, body: bytes, authorization: str = ""
    ) -> tuple[int, dict[str, object]]:
        with self.lock:
            self.arrived += 1
            held = self.hold_after is not None and len(self.requests) >= self.hold_after
        if held:
            self.released.wait(HOLD_SECONDS)
        with self.lock:
            self.requests.append((verb, path))
            if authorization != f"Bearer {TOKEN}":
                return 401, status(401, "Unauthorized", "Unauthorized")
            expected = PATH.format(namespace=self.namespace, name=self.name)
            if verb in self.forbidden:
                sa = f"system:serviceaccount:{self.namespace}:sitemap-publisher"
                return 403, status(
                    403,
                    "Forbidden",
                    (
                        f'ingresses.networking.k8s.io "{path.rsplit("/", 1)[-1]}" is forbidden: User "{sa}" '
                        f'cannot {verb} resource "ingresses" in API group "networking.k8s.io" '
                        f'in the namespace "{self.namespace}"'
                    ),
                )
            if path.split("?")[0] != expected or not self.exists:
                return 404, status(
                    404,
                    "NotFound",
                    f'ingresses.networking.k8s.io "{path.rsplit("/", 1)[-1]}" not found',
                )
            if verb == "get":
                return 200, self.ingress()
            if content_type.split(";")[0] != "application/merge-patch+json":
                return 415, status(
                    415, "UnsupportedMediaType", f"unsupported patch type {content_type}"
                )
            patch = json.loads(body)
            metadata = patch.get("metadata", {})
            wanted = metadata.get("resourceVersion")
            if wanted is not None and wanted != str(self.resource_version):
                return 409, status(
                    409,
                    "Conflict",
                    (
                        f'Operation cannot be fulfilled on ingresses.networking.k8s.io "{self.name}": '
                        "the object has been modified; please apply your changes to the latest version and try again"
                    ),
                )
            bucket = metadata.get("labels", {}).get(LIVE_LABEL, self.live)
            assert metadata.get("annotations", {}).get(REWRITE_ANNOTATION) == f"/{bucket}/$2"
            self.live = bucket
            self.resource_version += 1
            return 200, self.ingress()

    def switch(self) -> IngressSwitch:
        config = KubeConfig.from_one(
            cluster=Cluster(server=self.host), user=User(token=TOKEN), namespace=self.namespace
        ).get()
        assert config is not None
        return IngressSwitch.from_config(config, self.name, None)

    def kubeconfig(self, path: Path, namespace: str | None = None) -> Path:
        """A kubeconfig file whose current context is this server, in `namespace` if given."""
        context: dict[str, str] = {"cluster": "fake", "user": "fake"}
        if namespace:
            context["namespace"] = namespace
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.host}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": context}],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(document))
        return path


Fake = TypeVar("Fake", bound=FakeKube)


def _handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, verb: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            code, document = fake.handle(
                verb,
                self.path,
                self.headers.get("Content-Type", ""),
                body,
                self.headers.get("Authorization", ""),
            )
            data = json.dumps(document).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("get")

        def do_PATCH(self) -> None:
            self._answer("patch")

        def do_PUT(self) -> None:
            self._answer("update")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _served(fake: Fake) -> Iterator[Fake]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.host = f"http://127.0.0.1:{server.server_address[1]}"
    with serving(server):
        yield fake


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    yield from _served(FakeKube())


@pytest.fixture
def route() -> Iterator[FakeHTTPRoute]:
    """The sitemaps HTTPRoute and its Gateway's controller, on a stand-in API server."""
    from tests.sitemaps.gateway_api import FakeHTTPRoute

    yield from _served(FakeHTTPRoute())


@pytest.fixture
def client(s3_server: S3Server) -> Iterator[Minio]:
    """A storage client on the session's S3 server, with no generation buckets before or after."""
    minio = storage.connect(StorageSettings.from_env(s3_server.env()))
    for name in storage.generations(minio):
        storage.delete_bucket(minio, name)
    yield minio
    for name in storage.generations(minio):
        storage.delete_bucket(minio, name)
