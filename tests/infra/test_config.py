"""Stack config is typed and validated: each wrong value stops the program with its message."""

from __future__ import annotations

from typing import Any

import pytest
from stack_render import Rendered, stack_config

from infra.config import ConfigError, parse_quantity, parse_stack_config
from infra.cron import CronError, validate_schedule

SECRET = object()  # stands in for a secret Output; the parser only checks presence


def dev_raw() -> dict[str, Any]:
    prefix = "kube-image-processing:"
    return {key[len(prefix) :]: value for key, value in stack_config("dev").items()}


def parse(changes: dict[str, Any], secrets: dict[str, Any] | None = None) -> Any:
    raw = dev_raw()
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return parse_stack_config(raw, secrets or {})


def test_stack_files_parse() -> None:
    config = parse({})
    assert config.minio.replicas == 4
    assert config.minio.distributed
    assert config.minio.ci_cd_mode
    assert config.api.replicas == 2
    assert config.api.proxy_read_timeout_seconds == 60
    assert config.kubernetes.context == "minikube"


def test_defaults_without_a_stack_file() -> None:
    config = parse_stack_config({"api": {"host": "images.example.test"}}, {})
    assert config.namespace == "kube-image-processing"
    assert config.minio.replicas == 1
    assert not config.minio.ci_cd_mode
    assert config.minio.anti_affinity == "soft"
    assert config.ingress.class_name == "nginx"
    assert not config.image.push
    assert config.sitemaps.enabled
    assert config.sitemaps.source == "bucket"
    assert config.sitemaps.retain == 1


BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    (
        {"sitemaps.source": "bucket", "sitemaps.query": "SELECT loc, lastmod FROM items"},
        "sitemaps.query needs sitemaps.source=sql",
    ),
    ({"api.replicas": -1}, "api.replicas must be an integer >= 1, got -1"),
    ({"minio.replicas": -3}, "minio.replicas must be an integer >= 1, got -3"),
    ({"api.replicas": "two"}, 'api.replicas must be an integer >= 1, got "two"'),
    ({"minio.storageSize": "5Gx"}, "minio.storageSize must be a Kubernetes quantity"),
    ({"api.resources.limits.memory": "512MB"}, "api.resources.limits.memory must be a Kubernetes"),
    ({"ingress.className": "traefik"}, 'ingress.className must be one of nginx, got "traefik"'),
    ({"sitemaps.schedule": "every hour"}, 'sitemaps.schedule "every hour" is not a cron'),
    ({"sitemaps.schedule": "0 25 * * *"}, "hour value 25 is outside 0-23"),
    ({"sitemaps.schedule": "* * *"}, "expected 5 fields"),
    ({"minio.antiAffinity": "strict"}, "minio.antiAffinity must be one of soft, hard"),
    ({"minio.replicas": 17}, "minio.replicas=17 cannot be split into equal erasure sets"),
    ({"minio.antiAffinity": "hard"}, "minio.ciCdMode=true (MINIO_CI_CD) is only for"),
    ({"minio.image": "quay.io/minio/minio:latest"}, "minio.image must not use the tag latest"),
    ({"minio.image": "quay.io/minio/minio"}, "minio.image must be an image reference pinned"),
    ({"api.nodePort": 8080}, "api.nodePort must be an integer from 30000 to 32767"),
    ({"api.host": "Not A Host"}, "api.host must be a DNS host name"),
    ({"namespace": "Kube_Images"}, "namespace must be a DNS label"),
    ({"api.replica": 3}, "unknown config key api.replica; allowed keys under api:"),
    ({"image.platform": "linux/sparc"}, "image.platform must be one of linux/amd64, linux/arm64"),
    ({"image.push": True}, "image.push=true needs image.registry"),
    (
        {"image.registry": "registry.example.com", "image.username": "ci"},
        "image.registry=registry.example.com needs both image.username and the secret",
    ),
    ({"image.registry": "https://ghcr.io/org"}, "image.registry must be a registry host[:port]"),
    ({"image.registry": "ghcr.io/Org"}, "optionally with a path such as ghcr.io/org, got"),
    ({"sitemaps.schedule": "0 3 * * 7"}, "day of week value 7 is outside 0-6"),
    ({"sitemaps.schedule": "@DAILY"}, "unknown macro @DAILY; allowed (lower case): @yearly"),
    ({"sitemaps.schedule": "@Hourly"}, 'sitemaps.schedule "@Hourly" is not a cron schedule'),
    ({"api.host": "192.168.49.2"}, "api.host must be a DNS host name, not an IP address"),
    ({"api.host": "2001:db8::1"}, "api.host must be a DNS host name, not an IP address"),
    ({"sitemaps.host": "10.0.0.1"}, "sitemaps.host must be a DNS host name, not an IP address"),
    ({"api.host": "a" * 64 + ".example.com"}, "api.host has a label of 64 characters; each"),
    ({"sitemaps.host": "s." + "b" * 70 + ".test"}, "sitemaps.host has a label of 70 characters"),
    ({"api.incomingBucket": "In_Coming"}, "api.incomingBucket would stop the API at start: "),
    ({"api.processedBucket": "pr"}, "api.processedBucket would stop the API at start: "),
    (
        {"api.incomingBucket": "images", "api.processedBucket": "images"},
        "api.incomingBucket and api.processedBucket must differ",
    ),
    ({"namespace": "default"}, "namespace default exists in every cluster, so the stack cannot"),
    ({"namespace": "kube-system"}, "namespace kube-system exists in every cluster"),
    ({"namespace": "kube-public"}, "set namespaceExists=true to deploy into it"),
    ({"namespaceExists": "maybe"}, 'namespaceExists must be true or false, got "maybe"'),
    (
        {"sitemaps.baseUrl": "https://cdn.example.com/sitemaps"},
        "sitemaps.baseUrl must be served by the sitemaps Ingress, so its host must be "
        "sitemaps.host (sitemaps.kube-image-processing.test)",
    ),
    ({"minio.allowedCidrs": "10.0.0.0/8"}, "minio.allowedCidrs must be a list of CIDRs"),
    ({"minio.allowedCidrs": ["10.0.0.1/8"]}, 'minio.allowedCidrs has "10.0.0.1/8", which is'),
    ({"minio.allowDataLoss": "yes"}, 'minio.allowDataLoss must be true or false, got "yes"'),
    ({"kubernetes.clusterDomain": "10.96.0.10"}, "kubernetes.clusterDomain must be a DNS host"),
    ({"kubernetes.clusterDomian": "x.local"}, "unknown config key kubernetes.clusterDomian"),
    ({"sitemaps.source": "sql"}, "sitemaps.source=sql needs sitemaps.query and the secret"),
    ({"sitemaps.baseUrl": "http://x.example.com/maps"}, "sitemaps.baseUrl must be an absolute"),
    (
        {"api.host": "sitemaps.kube-image-processing.test"},
        "sitemaps.host must differ from api.host",
    ),
    (
        {"api.resources.requests.memory": "1Gi", "api.resources.limits.memory": "512Mi"},
        "api.resources.limits.memory (512Mi) must not be below api.resources.requests.memory",
    ),
    ({"minio.storageSize": "0"}, "minio.storageSize must be larger than 0"),
    ({"minio": "four"}, 'minio must be an object, got "four"'),
    ({"apiReplicas": 3}, "unknown config key apiReplicas; allowed keys under kube-image-"),
    ({"sitemaps.siteUrl": "images.example.com"}, "sitemaps.siteUrl must be the absolute"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_VALUES)
def test_wrong_values_name_the_key_and_what_is_allowed(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(changes)
    assert message in str(caught.value)


def test_config_error_is_a_clean_pulumi_run_error() -> None:
    import pulumi

    assert issubclass(ConfigError, pulumi.RunError)


def test_every_bad_value_message_is_one_line() -> None:
    for changes, _ in BAD_VALUES:
        with pytest.raises(ConfigError) as caught:
            parse(changes)
        assert "\n" not in str(caught.value), changes


def test_registry_without_static_credentials_is_accepted() -> None:
    """Credential helpers push; node IAM, ECR or a kubelet credential provider pulls."""
    config = parse_stack_config(
        {
            "image": {"registry": "123.dkr.ecr.eu-west-1.amazonaws.com"},
            "api": {"host": "images.example.test"},
        },
        {},
    )
    assert config.image.push
    assert config.image.username is None
    assert config.image.password is None


def test_registry_with_a_path_is_split_into_host_and_repository() -> None:
    config = parse_stack_config(
        {"image": {"registry": "ghcr.io/org/team"}, "api": {"host": "images.example.test"}}, {}
    )
    assert config.image.registry == "ghcr.io"
    assert config.image.repository == "org/team/kube-image-processing"
    assert config.image.name == "ghcr.io/org/team/kube-image-processing"


def test_platform_is_left_to_the_daemon_without_a_push() -> None:
    assert parse({}).image.platform is None
    assert parse({"image.platform": "linux/arm64"}).image.platform == "linux/arm64"
    pushed = parse_stack_config(
        {"image": {"registry": "registry.example.com"}, "api": {"host": "images.example.test"}}, {}
    )
    assert pushed.image.platform == "linux/amd64"


def test_an_existing_namespace_is_accepted_when_the_stack_says_so() -> None:
    config = parse({"namespace": "default", "namespaceExists": True})
    assert config.namespace == "default"
    assert config.namespace_exists


def test_cluster_domain_defaults_to_cluster_local() -> None:
    assert parse({}).kubernetes.cluster_domain == "cluster.local"
    changed = parse({"kubernetes.clusterDomain": "corp.internal"})
    assert changed.kubernetes.cluster_domain == "corp.internal"


def test_a_base_url_on_the_sitemaps_host_with_a_port_is_accepted() -> None:
    config = parse(
        {
            "sitemaps.host": "maps.example.com",
            "sitemaps.baseUrl": "https://maps.example.com:8443/sitemaps",
        }
    )
    assert config.sitemaps.base_url == "https://maps.example.com:8443/sitemaps"


def test_registry_with_credentials_is_accepted() -> None:
    config = parse_stack_config(
        {
            "image": {"registry": "registry.example.com:5000", "username": "ci"},
            "api": {"host": "images.example.test"},
        },
        {"registryPassword": SECRET},
    )
    assert config.image.push
    assert config.image.name == "registry.example.com:5000/kube-image-processing"


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 16, 18, 32])
def test_replica_counts_minio_accepts(replicas: int) -> None:
    assert parse({"minio.replicas": replicas}).minio.replicas == replicas


@pytest.mark.parametrize(
    "schedule",
    [
        "0 3 * * *",
        "*/15 * * * *",
        "0 0 1 jan,jul *",
        "30 2 * * mon-fri",
        "30 2 * * MON-FRI",
        "0 0 ? * 0",
        "0 0 * * 6",
        "0 0 * * sun",
        "@daily",
        "@hourly",
    ],
)
def test_valid_schedules(schedule: str) -> None:
    validate_schedule(schedule)


@pytest.mark.parametrize(
    "schedule",
    [
        "",
        "61 * * * *",
        "* * * * * *",
        "*/0 * * * *",
        "5-1 * * * *",
        "@every 1h",
        "TZ=UTC 0 3 * * *",
        "0 0 * * 7",
        "0 0 * * 5-7",
        "@Daily",
    ],
)
def test_invalid_schedules(schedule: str) -> None:
    with pytest.raises(CronError):
        validate_schedule(schedule)


def test_quantities() -> None:
    assert parse_quantity("500m") * 2 == 1
    assert parse_quantity("1Gi") == 1024**3
    assert parse_quantity("1e3") == 1000
    for bad in ("5Gx", "-1", "1.2.3", "Gi", ""):
        with pytest.raises(ValueError, match=bad or "^$"):
            parse_quantity(bad)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad-replicas", "api.replicas must be an integer >= 1, got -1"),
        ("bad-schedule", 'sitemaps.schedule "every hour" is not a cron schedule'),
        ("prod-without-secret", "needs both image.username and the secret registryPassword"),
        ("bare", "sitemaps.source=bucket lists images under the API's public URL"),
        ("no-api-host-bucket-sitemaps", "set api.host (or sitemaps.siteUrl)"),
        ("tls-without-api-host", "ingress.tls needs api.host"),
    ],
)
def test_the_program_stops_with_the_message(
    rendered: dict[str, Rendered], name: str, message: str
) -> None:
    result = rendered[name]
    assert result.error is not None
    assert result.error["type"] == "ConfigError"
    assert message in result.error["message"]
    assert not result.kubernetes(), "nothing may be registered before config is valid"


def test_program_runs_on_defaults_alone(variant) -> None:
    """Defaults plus api.host, the one key a bucket sitemap cannot do without ("bare" below)."""
    result = variant("no-stack-file")
    statefulset = result.one("StatefulSet", "minio")
    assert statefulset["spec"]["replicas"] == 1
