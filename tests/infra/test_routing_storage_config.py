"""The routing and storage choices in stack config: defaults, accepted values, one-line refusals."""

from __future__ import annotations

from typing import Any

import pytest
from stack_render import stack_config
from test_config import dev_raw

from infra.config import ConfigError, parse_stack_config

SECRET = object()  # stands in for a secret Output; the parser only checks presence
EXTERNAL_SECRETS: dict[str, Any] = {"storageAccessKey": SECRET, "storageSecretKey": SECRET}
GATEWAY = {"kind": "gateway", "gateway": {"name": "shared", "proxyPodLabels": {"app": "envoy"}}}
EXTERNAL = {"kind": "external", "endpoint": "objects.storage.example.test:9000", "tls": False}


def parse(
    routing: Any = None, storage: Any = None, secrets: dict[str, Any] | None = None, **raw: Any
) -> Any:
    config = {**dev_raw(), **raw}
    if routing is not None:
        config["routing"] = routing
    if storage is not None:
        config["storage"] = storage
    return parse_stack_config(config, secrets or {})


def test_defaults_are_todays_ingresses_and_minio() -> None:
    config = parse()
    assert config.routing.kind == "ingress"
    assert config.routing.gateway is None
    assert config.storage.kind == "minio"
    assert config.storage.endpoint is None


def test_gateway_defaults_to_the_stack_namespace_and_no_listener() -> None:
    config = parse(
        routing={
            "kind": "gateway",
            "gateway": {"name": "shared", "https": True, "proxyPodLabels": {"app": "envoy"}},
        }
    )
    gateway = config.routing.gateway
    assert gateway is not None
    assert (gateway.name, gateway.namespace, gateway.section_name) == (
        "shared",
        "kube-image-processing",
        None,
    )
    assert config.scheme == "https"
    assert config.sitemaps.base_url == "https://sitemaps.kube-image-processing.test/sitemaps"
    assert config.sitemaps.site_url == "https://images.kube-image-processing.test"


def test_external_storage_takes_endpoint_tls_region_and_secret_credentials() -> None:
    config = parse(
        storage={**EXTERNAL, "region": "eu-west-1"},
        secrets=EXTERNAL_SECRETS,
        sitemaps={**dev_raw()["sitemaps"]},
    )
    storage = config.storage
    assert (storage.endpoint, storage.tls, storage.region) == (
        "objects.storage.example.test:9000",
        False,
        "eu-west-1",
    )
    assert storage.host == "objects.storage.example.test"
    assert config.secret("storageAccessKey") is SECRET
    assert config.secret("storageSecretKey") is SECRET


def test_external_tls_defaults_on_and_is_accepted_without_sitemaps() -> None:
    config = parse(
        storage={"kind": "external", "endpoint": "s3.eu-west-1.amazonaws.com:443"},
        secrets=EXTERNAL_SECRETS,
        sitemaps={"enabled": False},
    )
    assert config.storage.kind == "external"
    assert config.storage.tls is None  # unset: HTTPS


def test_the_gateway_stack_file_parses() -> None:
    prefix = "kube-image-processing:"
    raw = {key[len(prefix) :]: value for key, value in stack_config("gateway").items()}
    config = parse_stack_config(raw, EXTERNAL_SECRETS)
    assert config.routing.kind == "gateway"
    assert config.storage.kind == "external"


REFUSED = [
    (
        {"routing": {"kind": "traefik"}},
        'routing.kind: must be one of ingress, gateway, got "traefik"',
    ),
    (
        {"routing": {"kind": "gateway"}},
        "routing.gateway.name: is required with routing.kind=gateway (an existing one)",
    ),
    (
        {"routing": {"gateway": {"name": "shared"}}},
        "routing.gateway: is only read with routing.kind=gateway",
    ),
    (
        {"routing": {"kind": "gateway", "gateway": {"name": "Shared_GW"}}},
        "routing.gateway.name: must be a Kubernetes object name (lowercase letters, digits, '-', '.'), got \"Shared_GW\"",
    ),
    (
        {"routing": {"kind": "gateway", "gateway": {"name": "gw", "namespace": "a.b"}}},
        'routing.gateway.namespace: must be a DNS label such as images, got "a.b"',
    ),
    (
        {"routing": {"kind": "gateway", "gateway": {"name": "gw", "sectionName": "HTTPS"}}},
        "routing.gateway.sectionName: must be a Kubernetes object name (lowercase letters,",
    ),
    (
        {"routing": {"kind": "gateway", "gateway": {"name": "gw", "listener": "https"}}},
        "routing.gateway.listener: is not a known key; known keys here: https, name, namespace,",
    ),
    (
        {"routing": {"kind": "gateway", "gateway": {"name": "gw", "https": "yes"}}},
        'routing.gateway.https: must be true or false, got "yes"',
    ),
    (
        {"routing": {"kind": "gateway", "gateway": {"name": "gw", "requestTimeout": "60s"}}},
        'routing.gateway.requestTimeout: must be true or false, got "60s"',
    ),
    (
        {"routing": {"kind": "gateway", "gateway": {"name": "gw", "proxyPodLabels": ["envoy"]}}},
        'routing.gateway.proxyPodLabels: must be an object of keys and values, got ["envoy"]',
    ),
    (
        {
            "routing": {
                "kind": "gateway",
                "gateway": {"name": "gw", "proxyPodLabels": {"app": "not a value"}},
            }
        },
        "routing.gateway.proxyPodLabels: must map label keys ([prefix/]name) to values",
    ),
    (
        {"routing": {"kind": "gateway", "gateway": {"name": "gw"}}},
        "routing.gateway.proxyPodLabels: is needed (or minio.allowedCidrs) for the sitemaps",
    ),
    (
        {"routing": GATEWAY, "ingress": {"tls": {"secretName": "site-tls"}}},
        "ingress.tls: needs api.host, and routing.kind=ingress (not a Gateway's TLS)",
    ),
    ({"storage": {"kind": "s3"}}, 'storage.kind: must be one of minio, external, got "s3"'),
    (
        {"storage": {"endpoint": "s3.example.test:9000"}},
        "storage.endpoint: is only read with storage.kind=external",
    ),
    ({"storage": {"kind": "external"}}, "storage.endpoint: is required with storage.kind=external"),
    (
        {"storage": {"kind": "external", "endpoint": "http://s3.example.test:9000"}},
        "storage.endpoint: must be host:port, such as s3.example.com:9000, got",
    ),
    (
        {"storage": {"kind": "external", "endpoint": "s3.example.test"}},
        'storage.endpoint: must be host:port, such as s3.example.com:9000, got "s3.example.test"',
    ),
    (
        {"storage": {"kind": "external", "endpoint": "s3.example.test:70000"}},
        "storage.endpoint: must be host:port, such as s3.example.com:9000, got",
    ),
    (
        {"storage": {**EXTERNAL, "region": "EU West"}},
        'storage.region: must be a region name such as eu-west-1, got "EU West"',
    ),
    (
        {"storage": {**EXTERNAL, "bucket": "x"}},
        "storage.bucket: is not a known key; known keys here: endpoint, kind, region, tls",
    ),
    ({"storage": {**EXTERNAL, "tls": "maybe"}}, 'storage.tls: must be true or false, got "maybe"'),
    (
        {"storage": {**EXTERNAL, "tls": True}},
        "storage.tls: true cannot serve the sitemaps route (it has no HTTPS to S3)",
    ),
    (
        {"storage": {**EXTERNAL, "endpoint": "10.0.0.8:9000"}},
        "storage.endpoint: needs a DNS name for the sitemaps route's ExternalName",
    ),
    (
        {"storage": {"kind": "minio"}, "secrets": EXTERNAL_SECRETS},
        "storageAccessKey: is only read with storage.kind=external",
    ),
]


@pytest.mark.parametrize(("changes", "message"), REFUSED)
def test_wrong_routing_or_storage_is_refused_in_one_line(
    changes: dict[str, Any], message: str
) -> None:
    changes = dict(changes)
    external = changes.get("storage", {}).get("kind") == "external"
    secrets = changes.pop("secrets", EXTERNAL_SECRETS if external else {})
    with pytest.raises(ConfigError) as caught:
        parse(secrets=secrets, **changes)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_external_storage_needs_both_credentials() -> None:
    with pytest.raises(ConfigError, match=r"storage\.kind: external takes .* storageSecretKey"):
        parse(storage=EXTERNAL, secrets={"storageAccessKey": SECRET})


def test_external_storage_refuses_minio_credentials() -> None:
    with pytest.raises(ConfigError, match=r"storage\.kind: external takes .* storageSecretKey"):
        parse(storage=EXTERNAL, secrets={**EXTERNAL_SECRETS, "minioRootUser": SECRET})


def test_minio_with_gateway_accepts_cidrs_instead_of_proxy_labels() -> None:
    config = parse(
        routing={"kind": "gateway", "gateway": {"name": "gw"}},
        minio={**dev_raw()["minio"], "allowedCidrs": ["192.168.49.0/24"]},
    )
    assert config.routing.gateway is not None
    assert config.routing.gateway.proxy_pod_labels == {}
