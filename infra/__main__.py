"""Composition root: read the stack config, build the components, export the outputs."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime.config import get_config_env, is_config_secret
from pulumi_kubernetes.core.v1 import Namespace
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from infra.api import ImageApi, ImageApiArgs
from infra.common import INGRESS_CONTROLLER_LABELS, MINIO_CONSOLE_PORT, StorageAccess, labels
from infra.config import SECRETS, SET_SECRET, ConfigError, StackConfig, parse_stack_config
from infra.config.base import PROJECT
from infra.image import AppImage, AppImageArgs
from infra.minio import MinioCluster, MinioClusterArgs
from infra.sitemaps import SitemapPublisher, SitemapPublisherArgs, index_url
from infra.storage import ExternalStorage, ExternalStorageArgs
from service.fields import model_of


def load_config() -> StackConfig:
    """Read `kube-image-processing:*` stack config and validate it; ConfigError on a bad value."""
    config, prefix = pulumi.Config(PROJECT), f"{PROJECT}:"
    names = set(pulumi.runtime.config.CONFIG.get()) | set(get_config_env())
    raw: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for key in sorted(name[len(prefix) :] for name in names if name.startswith(prefix)):
        text = config.get(key)
        if key in SECRETS and text and not is_config_secret(prefix + key):
            raise ConfigError(
                f"{key}: is a secret held in clear text; use {SET_SECRET} {key} <value>"
            )
        if key in SECRETS and text:
            secrets[key] = config.get_secret(key)
        elif key not in SECRETS and text:
            field = next((f for f in StackConfig.model_fields.values() if f.alias == key), None)
            raw[key] = _decoded(text) if field and model_of(field.annotation) else text
    return parse_stack_config(raw, secrets)


def _decoded(text: str) -> Any:
    try:
        # A number of more digits than Python reads stays text, for the model to refuse by key.
        return json.loads(
            text, parse_int=lambda digits: int(digits) if len(digits) < 4000 else digits
        )
    except ValueError:
        return text  # not JSON: refused by the model, "must be an object", with the text shown


config = load_config()

provider = k8s.Provider(
    "kubernetes",
    context=config.kubernetes.context,
    # None would make the SDK copy $KUBECONFIG into the state, where another machine's preview
    # fails to parse it (pulumi-kubernetes#3217); with "" the provider uses client-go's default
    # loading rules ($KUBECONFIG, ~/.kube/config) at run time (provider/pkg/provider/provider.go).
    kubeconfig=config.kubernetes.kubeconfig or "",
    # ignore_changes on the sitemaps Ingress or HTTPRoute relies on server-side apply field
    # ownership.
    enable_server_side_apply=True,
)
in_cluster = pulumi.ResourceOptions(provider=provider)

namespace_name: pulumi.Output[str]
if config.namespace_exists:
    namespace_name = pulumi.Output.from_input(config.namespace)
else:
    namespace = Namespace(
        "namespace",
        metadata=ObjectMetaArgs(name=config.namespace, labels=labels("namespace")),
        opts=in_cluster,
    )
    namespace_name = namespace.metadata.name
components = pulumi.ResourceOptions(providers={"kubernetes": provider})

image = AppImage(
    "app-image",
    AppImageArgs(
        namespace=namespace_name,
        config=config.image,
        password=config.secret("registryPassword"),
    ),
    opts=components,
)
gateway = config.routing.gateway
storage: StorageAccess
access_key, secret_key = config.secret("storageAccessKey"), config.secret("storageSecretKey")
if config.storage.kind == "external" and access_key and secret_key:
    external = ExternalStorage(
        "storage",
        ExternalStorageArgs(
            namespace=namespace_name,
            config=config.storage,
            access_key=access_key,
            secret_key=secret_key,
            route=config.sitemaps.enabled,
        ),
        opts=components,
    )
    storage = external.access
    pulumi.export("storage_endpoint", config.storage.endpoint)
else:
    minio = MinioCluster(
        "minio",
        MinioClusterArgs(
            namespace=namespace_name,
            config=config.minio,
            cluster_domain=config.kubernetes.cluster_domain,
            root_user=config.secret("minioRootUser"),
            root_password=config.secret("minioRootPassword"),
            proxy_pod_labels=(
                gateway.proxy_pod_labels if gateway is not None else INGRESS_CONTROLLER_LABELS
            ),
        ),
        opts=components,
    )
    storage = minio.access
    pulumi.export("minio_service", minio.service_name)
    pulumi.export("minio_endpoint", minio.endpoint)
    pulumi.export(
        "minio_console_command",
        pulumi.Output.concat(
            "kubectl --namespace ",
            namespace_name,
            " port-forward service/",
            minio.service_name,
            f" {MINIO_CONSOLE_PORT}:{MINIO_CONSOLE_PORT}",
        ),
    )
api = ImageApi(
    "image-api",
    ImageApiArgs(
        namespace=namespace_name,
        config=config.api,
        ingress=config.ingress,
        image=image.ref,
        image_pull_policy=image.pull_policy,
        storage=storage,
        pull_secret_names=image.pull_secret_names,
        sitemap_index_url=index_url(config.sitemaps) if config.sitemaps.enabled else None,
        gateway=gateway,
        scheme=config.scheme,
    ),
    opts=components,
)

pulumi.export("namespace", namespace_name)
pulumi.export("api_url", api.url)
pulumi.export("api_node_port", api.node_port)
pulumi.export("api_largest_images", api.largest_images)
pulumi.export("image_ref", image.ref)

if config.sitemaps.enabled:
    sitemaps = SitemapPublisher(
        "sitemaps",
        SitemapPublisherArgs(
            namespace=namespace_name,
            config=config.sitemaps,
            ingress=config.ingress,
            image=image.ref,
            image_pull_policy=image.pull_policy,
            storage=storage,
            processed_bucket=config.api.processed_bucket,
            database_url=config.secret("sitemapDatabaseUrl"),
            pull_secret_names=image.pull_secret_names,
            gateway=gateway,
        ),
        opts=components,
    )
    pulumi.export("sitemaps_url", sitemaps.index_url)
    pulumi.export("sitemaps_cronjob", sitemaps.cronjob_name)
