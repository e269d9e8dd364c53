"""The Kubernetes side: read the sitemaps Ingress and switch it with a resourceVersion precondition."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from service.sitemaps.errors import SitemapError

REWRITE_ANNOTATION = "nginx.ingress.kubernetes.io/rewrite-target"
LIVE_LABEL = "kube-image-processing/live-bucket"
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
FIELD_MANAGER = "sitemap-publisher"


class ConflictError(Exception):
    """The Ingress changed since it was read (HTTP 409)."""


@dataclass(frozen=True)
class IngressState:
    """The live bucket named by the Ingress, and the resourceVersion it was read at."""

    live: str | None
    resource_version: str


def default_namespace() -> str:
    """The pod's own namespace inside a cluster, else `default`."""
    try:
        return NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def api_client() -> client.ApiClient:
    """A client configured in-cluster inside a pod, from kubeconfig outside."""
    configuration = client.Configuration()
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(client_configuration=configuration)
    except (ConfigException, OSError) as error:
        raise SitemapError(f"no Kubernetes configuration: {' '.join(str(error).split())}") from None
    return client.ApiClient(configuration)


class IngressSwitch:
    """Reads and patches one Ingress; the only verbs used are get and patch."""

    def __init__(self, api: client.ApiClient, name: str, namespace: str) -> None:
        self.api = client.NetworkingV1Api(api)
        self.name = name
        self.namespace = namespace
        self.host = api.configuration.host

    def read(self) -> IngressState:
        """The current live bucket and resourceVersion."""
        try:
            ingress = self.api.read_namespaced_ingress(
                self.name, self.namespace, _request_timeout=30
            )
        except (ApiException, urllib3.exceptions.HTTPError) as error:
            raise self._explain("get", error) from None
        metadata = ingress.metadata
        labels = (metadata.labels if metadata else None) or {}
        version = metadata.resource_version if metadata else None
        if not version:
            raise SitemapError(f"ingress '{self.name}' came back without a resourceVersion")
        return IngressState(labels.get(LIVE_LABEL), version)

    def switch(self, bucket: str, resource_version: str) -> IngressState:
        """Point the Ingress at `bucket`, only if it is still at `resource_version`."""
        body = {
            "metadata": {
                "resourceVersion": resource_version,
                "labels": {LIVE_LABEL: bucket},
                "annotations": {REWRITE_ANNOTATION: f"/{bucket}/$2"},
            }
        }
        try:
            # The client would default to a JSON *Patch* content type; this body is a merge patch.
            ingress = self.api.patch_namespaced_ingress(
                self.name,
                self.namespace,
                body,
                field_manager=FIELD_MANAGER,
                _content_type="application/merge-patch+json",
                _request_timeout=30,
            )
        except ApiException as error:
            if error.status == 409:
                raise ConflictError(str(error.reason)) from None
            raise self._explain("patch", error) from None
        except urllib3.exceptions.HTTPError as error:
            raise self._explain("patch", error) from None
        metadata = ingress.metadata
        return IngressState(bucket, (metadata.resource_version if metadata else None) or "")

    def _explain(self, verb: str, error: Exception) -> SitemapError:
        where = f"networking.k8s.io ingresses '{self.name}' in namespace '{self.namespace}'"
        if not isinstance(error, ApiException):
            reason = getattr(error, "reason", None) or error
            return SitemapError(
                f"Kubernetes API unreachable at {self.host}: {' '.join(str(reason).split())}"
            )
        message = _status_message(error.body)
        if error.status == 403:
            return SitemapError(
                f"forbidden: cannot {verb} {where}" + (f" ({message})" if message else "")
            )
        if error.status == 404:
            return SitemapError(f"ingress '{self.name}' not found in namespace '{self.namespace}'")
        if error.status == 401:
            return SitemapError(
                f"unauthorized: the Kubernetes API at {self.host} refused the credentials"
            )
        return SitemapError(f"cannot {verb} {where}: HTTP {error.status} {message or error.reason}")


def _status_message(body: object) -> str:
    try:
        status = json.loads(body) if isinstance(body, str | bytes) else {}
    except ValueError:
        return ""
    message = status.get("message", "") if isinstance(status, dict) else ""
    return " ".join(str(message).split())
