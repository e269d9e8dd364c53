"""The suite's Kubernetes API stand-in, serving the sitemaps Ingress the program rendered."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from service.sitemaps.ingress import LIVE_LABEL, REWRITE_ANNOTATION
from tests.servers import serving
from tests.sitemaps.conftest import TOKEN, FakeKube, _handler


@dataclass
class RenderedIngressKube(FakeKube):
    """The suite's Kubernetes API stand-in, serving the Ingress the program rendered."""

    rendered: dict[str, Any] = field(default_factory=dict)

    def ingress(self) -> dict[str, object]:
        obj = copy.deepcopy(self.rendered)
        metadata = obj["metadata"]
        metadata["resourceVersion"] = str(self.resource_version)
        if self.live:
            metadata.setdefault("labels", {})[LIVE_LABEL] = self.live
            metadata.setdefault("annotations", {})[REWRITE_ANNOTATION] = f"/{self.live}/$2"
        return obj


@dataclass
class KubeApi:
    """The stand-in on loopback, and a kubeconfig that points the sitemap job at it."""

    fake: RenderedIngressKube
    kubeconfig: Path


@contextmanager
def kube_api(rendered_ingress: dict[str, Any], directory: Path) -> Iterator[KubeApi]:
    """Serve `rendered_ingress` from the stand-in for the duration of the generator."""
    metadata = rendered_ingress["metadata"]
    fake = RenderedIngressKube(
        namespace=metadata["namespace"], name=metadata["name"], rendered=rendered_ingress
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.host = f"http://127.0.0.1:{server.server_address[1]}"
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: stand-in, cluster: {{server: '{fake.host}'}}}}]\n"
        f"users: [{{name: stand-in, user: {{token: {TOKEN}}}}}]\n"
        "contexts: [{name: stand-in, context: {cluster: stand-in, user: stand-in, "
        f"namespace: {fake.namespace}}}}}]\n"
        "current-context: stand-in\n"
    )
    with serving(server):
        yield KubeApi(fake, kubeconfig)
