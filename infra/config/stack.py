"""The whole stack config: the key groups, the rules across them, and the stack's secrets."""

from collections.abc import Iterator, Mapping
from typing import Any, Self

import pulumi
from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, model_validator

from infra.config.api import ApiConfig
from infra.config.base import PROJECT, StackModel, config_error
from infra.config.cluster import IngressConfig, KubernetesConfig
from infra.config.image import ImageConfig
from infra.config.minio import MinioConfig
from infra.config.routing import RoutingConfig
from infra.config.sitemaps import SitemapsConfig
from infra.config.storage import StorageConfig
from infra.kinds import DnsLabel, is_ip
from service.fields import Flag, refuse

# Kubernetes makes these in every cluster: a stack that owned one would delete it on destroy.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Top-level keys that hold secrets, each set with `pulumi config set --secret <key> <value>`.
SECRETS = {
    "minioRootUser": "MinIO's root user; generated when unset",
    "minioRootPassword": "MinIO's root password; generated when unset",
    "registryPassword": "password or token of image.username at image.registry",
    "sitemapDatabaseUrl": "SQLAlchemy URL of the database sitemaps.query reads",
    "storageAccessKey": "access key of the external S3 (storage.kind=external)",
    "storageSecretKey": "secret key of the external S3 (storage.kind=external)",
}
SET_SECRET = "pulumi config set --secret"  # noqa: S105 - a command, not a password


class StackConfig(StackModel):
    """The whole validated stack configuration (`kube-image-processing:*`)."""

    namespace: DnsLabel = Field(PROJECT, description="the namespace of every object")
    namespace_exists: Flag = Field(False, description="use an existing namespace, not own one")
    kubernetes: KubernetesConfig = Field(KubernetesConfig(), description="the cluster")
    ingress: IngressConfig = Field(IngressConfig(), description="the nginx Ingresses")
    minio: MinioConfig = Field(MinioConfig(), description="the MinIO StatefulSet")
    image: ImageConfig = Field(ImageConfig(), description="the application image")
    api: ApiConfig = Field(ApiConfig(), description="the image API")
    sitemaps: SitemapsConfig = Field(SitemapsConfig(), description="the sitemap publisher")
    routing: RoutingConfig = Field(RoutingConfig(), description="Ingresses or Gateway API routes")
    storage: StorageConfig = Field(StorageConfig(), description="MinIO or an external S3")
    _secrets: dict[str, pulumi.Output[str]] = PrivateAttr(default_factory=dict)

    def secret(self, key: str) -> pulumi.Output[str] | None:
        """One of SECRETS as a Pulumi secret Output, or None where the stack sets none."""
        return self._secrets.get(key) if key in SECRETS else self._secrets[key]

    @property
    def scheme(self) -> str:
        """https where the Ingresses or the Gateway's listener terminate TLS, else http."""
        gateway = self.routing.gateway
        secure = gateway.https if gateway else self.ingress.tls is not None
        return "https" if secure else "http"

    @model_validator(mode="after")
    def _across_groups(self, info: ValidationInfo) -> Self:
        for key, what in _broken(self, set((info.context or {}).get("secrets", ()))):
            raise refuse(what, key)
        sitemaps, scheme, gateway = self.sitemaps, self.scheme, self.routing.gateway
        api_url = f"{scheme}://{self.api.host}" if self.api.host else ""
        base_url = sitemaps.base_url or f"{scheme}://{sitemaps.host}/sitemaps"
        site_url = (sitemaps.site_url or api_url).rstrip("/") or None
        urls = {"base_url": base_url.rstrip("/"), "site_url": site_url}
        update: dict[str, Any] = {"sitemaps": sitemaps.model_copy(update=urls)}
        if gateway is not None and gateway.namespace is None:
            gateway = gateway.model_copy(update={"namespace": self.namespace})
            update["routing"] = self.routing.model_copy(update={"gateway": gateway})
        return self.model_copy(update=update)


def _broken(config: StackConfig, secrets: set[str]) -> Iterator[tuple[str, str]]:
    """(key, what is wrong) for each rule across the groups that `config` breaks, in order."""
    api, maps, image, storage = config.api, config.sitemaps, config.image, config.storage
    gateway, external = config.routing.gateway, {"storageAccessKey", "storageSecretKey"}
    outside = storage.kind == "external"
    if not config.namespace_exists and config.namespace in SYSTEM_NAMESPACES:
        yield "namespace", "is in every cluster: choose another, or set namespaceExists=true"
    if config.ingress.tls is not None and (api.host is None or gateway is not None):
        yield "ingress.tls", "needs api.host, and routing.kind=ingress (not a Gateway's TLS)"
    if image.username and "registryPassword" not in secrets:
        yield "image.username", f"needs its token: {SET_SECRET} registryPassword <token>"
    if "registryPassword" in secrets and not image.username:
        yield "registryPassword", "is only read with image.registry and image.username"
    if maps.source == "sql" and "sitemapDatabaseUrl" not in secrets:
        yield "sitemaps.source", f"sql needs {SET_SECRET} sitemapDatabaseUrl <url>"
    if maps.enabled and maps.source == "bucket" and not (maps.site_url or api.host):
        # The API on the Ingress's default server has no public name to list images under.
        yield "sitemaps.source", "bucket needs api.host or sitemaps.siteUrl, or enabled=false"
    if api.host is not None and api.host == maps.host:
        # ingress-nginx applies the sitemaps route's regex and rewrite to every path of a host.
        yield "sitemaps.host", f"must differ from api.host ({api.host})"
    for key, url in (("baseUrl", maps.base_url), ("siteUrl", maps.site_url)):
        if config.scheme == "https" and url is not None and url.startswith("http://"):
            yield f"sitemaps.{key}", "must be https where the routes terminate TLS"
    if not outside and secrets & external:
        yield min(secrets & external), "is only read with storage.kind=external"
    if outside and (
        secrets & external != external or secrets & {"minioRootUser", "minioRootPassword"}
    ):
        yield "storage.kind", f"external takes {SET_SECRET} storageAccessKey and storageSecretKey"
    if outside and maps.enabled and storage.tls is not False:
        yield "storage.tls", "true cannot serve the sitemaps route (it has no HTTPS to S3)"
    if outside and maps.enabled and is_ip(storage.host):
        yield "storage.endpoint", "needs a DNS name for the sitemaps route's ExternalName"
    # MinIO's NetworkPolicy admits the Gateway's proxy pods, which serve the sitemaps.
    unlisted = gateway and not (gateway.proxy_pod_labels or config.minio.allowed_cidrs)
    if unlisted and not outside and maps.enabled:
        yield "routing.gateway.proxyPodLabels", "is needed (or minio.allowedCidrs) for the sitemaps"


def parse_stack_config(raw: Mapping[str, Any], secrets: Mapping[str, Any]) -> StackConfig:
    """Validate plain config values (objects already decoded) plus secret Outputs by key."""
    try:
        config = StackConfig.model_validate(dict(raw), context={"secrets": set(secrets)})
    except ValidationError as error:
        raise config_error(StackConfig, error, dict(raw)) from None
    config._secrets = dict(secrets)
    return config
