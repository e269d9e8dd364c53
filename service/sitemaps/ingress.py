"""The Kubernetes side: read the sitemaps Ingress and switch it with a resourceVersion precondition."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx2
import yaml
from lightkube import ApiError, Client, ConfigError, KubeConfig
from lightkube.config.kubeconfig import DEFAULT_KUBECONFIG, SingleConfig
from lightkube.config.models import User
from lightkube.resources.networking_v1 import Ingress
from lightkube.types import PatchType

from service.settings import KubeClientSettings
from service.sitemaps.errors import SitemapError

REWRITE_ANNOTATION = "nginx.ingress.kubernetes.io/rewrite-target"
LIVE_LABEL = "kube-image-processing/live-bucket"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
FIELD_MANAGER = "sitemap-publisher"
# Bounded waits; httpx retries nothing on its own, so an unreachable server is one error.
TIMEOUT = httpx2.Timeout(30.0, connect=10.0)


class ConflictError(Exception):
    """The Ingress changed since it was read (HTTP 409)."""


@dataclass(frozen=True)
class IngressState:
    """The live bucket named by the Ingress, and the resourceVersion it was read at."""

    live: str | None
    resource_version: str


def kube_config() -> SingleConfig:
    """In-cluster config inside a pod; outside, the current context of the kubeconfig."""
    try:
        where = KubeClientSettings.from_env()
        if where.service_host:
            config = KubeConfig.from_service_account(SERVICE_ACCOUNT)
        else:
            paths = (where.kubeconfig or "").split(os.pathsep)
            # kubectl merges a list of files; the first one that exists is used here.
            path = next((p for p in paths if p and Path(p).is_file()), paths[0] or None)
            config = KubeConfig.from_file(Path(path or DEFAULT_KUBECONFIG).expanduser())
        single = config.get()
    except (ConfigError, OSError, ValueError, KeyError, yaml.YAMLError) as error:
        raise SitemapError(f"no Kubernetes configuration: {' '.join(str(error).split())}") from None
    if single is None:
        raise SitemapError("no Kubernetes configuration: the kubeconfig has no current context")
    return single


def api_client(config: SingleConfig | None = None) -> Client:
    """A client for `config` (by default `kube_config()`); HTTP(S)_PROXY is not used."""
    config = config or kube_config()
    if config.user is None:  # a context without a user, as kubectl allows: no credentials
        config = config._replace(user=User())
    try:
        return Client(config, timeout=TIMEOUT, trust_env=False, lazy=True)
    except (ConfigError, OSError, ValueError) as error:
        raise SitemapError(
            f"bad Kubernetes configuration: {' '.join(str(error).split())}"
        ) from None


class IngressSwitch:
    """Reads and patches one Ingress; the only verbs used are get and patch."""

    kind = "Ingress"

    def __init__(self, api: Client, name: str, namespace: str, host: str = "") -> None:
        self.api = api
        self.name = name
        self.namespace = namespace
        self.host = host or "the Kubernetes API"

    @classmethod
    def from_config(cls, config: SingleConfig, name: str, namespace: str | None) -> IngressSwitch:
        """The switch for `name` in `namespace`, or in the config's namespace when None."""
        return cls(api_client(config), name, namespace or config.namespace, config.cluster.server)

    def read(self) -> IngressState:
        """The current live bucket and resourceVersion."""
        try:
            ingress = self.api.get(Ingress, self.name, namespace=self.namespace)
        except (ApiError, httpx2.HTTPError, ValueError) as error:
            raise self._explain("get", error) from None
        metadata = ingress.metadata
        labels = (metadata.labels if metadata else None) or {}
        version = metadata.resourceVersion if metadata else None
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
            ingress = self.api.patch(
                Ingress,
                self.name,
                body,
                namespace=self.namespace,
                patch_type=PatchType.MERGE,
                field_manager=FIELD_MANAGER,
            )
        except ApiError as error:
            if _code(error) == 409:
                raise ConflictError(str(error.status.reason)) from None
            raise self._explain("patch", error) from None
        except (httpx2.HTTPError, ValueError) as error:
            raise self._explain("patch", error) from None
        metadata = ingress.metadata
        return IngressState(bucket, (metadata.resourceVersion if metadata else None) or "")

    def _explain(self, verb: str, error: Exception) -> SitemapError:
        where = KubeObject("networking.k8s.io ingresses", "ingress", self.name, self.namespace)
        return explain(verb, error, where, self.host)


@dataclass(frozen=True)
class KubeObject:
    """One namespaced object, as error messages name it."""

    resource: str  # group and plural, as RBAC names them: "networking.k8s.io ingresses"
    noun: str  # "ingress", "httproute"
    name: str
    namespace: str


def explain(verb: str, error: Exception, what: KubeObject, host: str) -> SitemapError:
    """One line for a failed call on `what`: unreachable, 401, 403, 404, or the Status."""
    where = f"{what.resource} '{what.name}' in namespace '{what.namespace}'"
    if isinstance(error, ValueError):  # an error answer that is no JSON Status
        return SitemapError(f"cannot {verb} {where}: {host} answered with no Kubernetes Status")
    if not isinstance(error, ApiError):
        return SitemapError(f"Kubernetes API unreachable at {host}: {' '.join(str(error).split())}")
    code = _code(error)
    message = " ".join(str(error.status.message or "").split())
    if code == 403:
        return SitemapError(
            f"forbidden: cannot {verb} {where}" + (f" ({message})" if message else "")
        )
    if code == 404:
        return SitemapError(f"{what.noun} '{what.name}' not found in namespace '{what.namespace}'")
    if code == 401:
        return SitemapError(f"unauthorized: the Kubernetes API at {host} refused the credentials")
    return SitemapError(f"cannot {verb} {where}: HTTP {code} {message or _reason(error)}")


def _code(error: ApiError) -> int | None:
    return error.status.code or (error.response.status_code if error.response else None)


def _reason(error: ApiError) -> str:
    return str(error.status.reason or "") or "error"
