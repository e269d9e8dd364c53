"""Stack config is typed and validated: each wrong value stops the program with its message."""

from __future__ import annotations

from typing import Any

import pytest
from stack_render import Rendered, stack_config

from infra.config import ConfigError, parse_stack_config
from infra.cron import CronError, validate_schedule
from infra.image import build_platform, image_name, registry_host
from infra.kinds import parse_quantity
from service.settings import route_timeout_seconds

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
    assert route_timeout_seconds(config.api.fetch_timeout_seconds) == 60
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
        "sitemaps.query: needs sitemaps.source=sql",
    ),
    ({"api.replicas": -1}, "api.replicas: must be an integer from 1 to 2147483647, got -1"),
    ({"minio.replicas": -3}, "minio.replicas: must be an integer from 1 to 2147483647, got -3"),
    ({"api.replicas": "two"}, 'api.replicas: must be an integer from 1 to 2147483647, got "two"'),
    (
        {"minio.storageSize": "5Gx"},
        'minio.storageSize: must be a quantity such as 500m or 5Gi, got "5Gx"',
    ),
    (
        {"api.resources.limits.memory": "512MB"},
        'api.resources.limits.memory: must be a quantity such as 500m or 5Gi, got "512MB"',
    ),
    ({"ingress.className": "traefik"}, 'ingress.className: must be one of nginx, got "traefik"'),
    (
        {"sitemaps.schedule": "every hour"},
        "sitemaps.schedule: is not a cron schedule: expected 5 fields (minute hour day-of-month",
    ),
    (
        {"sitemaps.schedule": "0 25 * * *"},
        'sitemaps.schedule: is not a cron schedule: hour value 25 is outside 0-23, got "0 25 * *',
    ),
    (
        {"sitemaps.schedule": "* * *"},
        "sitemaps.schedule: is not a cron schedule: expected 5 fields (minute hour day-of-month",
    ),
    (
        {"minio.antiAffinity": "strict"},
        'minio.antiAffinity: must be one of soft, hard, got "strict"',
    ),
    (
        {"minio.replicas": 17},
        "minio.replicas: 17 cannot be split into erasure sets of 2 to 16 drives; choose 1, 2 to",
    ),
    (
        {"minio.antiAffinity": "hard"},
        "minio.ciCdMode: true is for single-machine clusters whose volumes sit on the root disk;",
    ),
    (
        {"minio.image": "quay.io/minio/minio:latest"},
        "minio.image: must not use the tag latest; pin a release tag, got",
    ),
    (
        {"minio.image": "quay.io/minio/minio"},
        'minio.image: must be pinned by tag or digest, got "quay.io/minio/minio"',
    ),
    ({"api.nodePort": 8080}, "api.nodePort: must be an integer from 30000 to 32767, got 8080"),
    (
        {"api.host": "Not A Host"},
        'api.host: must be a DNS host name such as api.example.com, got "Not A Host"',
    ),
    (
        {"namespace": "Kube_Images"},
        'namespace: must be a DNS label such as images, got "Kube_Images"',
    ),
    ({"api.replica": 3}, "api.replica: is not a known key; did you mean replicas?"),
    (
        {"image.platform": "linux/sparc"},
        'image.platform: must be one of linux/amd64, linux/arm64, got "linux/sparc"',
    ),
    ({"image.push": True}, "image.push: true needs image.registry: there is nowhere to push to"),
    (
        {"image.registry": "registry.example.com", "image.username": "ci"},
        "image.username: needs its token: pulumi config set --secret registryPassword <token>",
    ),
    (
        {"image.registry": "https://ghcr.io/org"},
        "image.registry: must be a registry host[:port], optionally with a path, such as",
    ),
    (
        {"image.registry": "ghcr.io/Org"},
        "image.registry: must be a registry host[:port], optionally with a path, such as",
    ),
    (
        {"sitemaps.schedule": "0 3 * * 7"},
        'sitemaps.schedule: is not a cron schedule: day of week value 7 is outside 0-6, got "0 3',
    ),
    (
        {"sitemaps.schedule": "@DAILY"},
        "sitemaps.schedule: is not a cron schedule: unknown macro @DAILY; allowed (lower case):",
    ),
    (
        {"sitemaps.schedule": "@Hourly"},
        "sitemaps.schedule: is not a cron schedule: unknown macro @Hourly; allowed (lower case):",
    ),
    (
        {"api.host": "192.168.49.2"},
        'api.host: must be a DNS host name, not an IP address, got "192.168.49.2"',
    ),
    (
        {"api.host": "2001:db8::1"},
        'api.host: must be a DNS host name, not an IP address, got "2001:db8::1"',
    ),
    (
        {"sitemaps.host": "10.0.0.1"},
        'sitemaps.host: must be a DNS host name, not an IP address, got "10.0.0.1"',
    ),
    (
        {"api.host": "a" * 64 + ".example.com"},
        "api.host: must be a DNS host name of at most 253 characters, 63 between dots, got",
    ),
    (
        {"sitemaps.host": "s." + "b" * 70 + ".test"},
        "sitemaps.host: must be a DNS host name of at most 253 characters, 63 between dots, got",
    ),
    (
        {"api.incomingBucket": "In_Coming"},
        "api.incomingBucket: must be a valid S3 bucket name: 3 to 63 lowercase letters, digits,",
    ),
    (
        {"api.processedBucket": "pr"},
        "api.processedBucket: must be a valid S3 bucket name: 3 to 63 lowercase letters, digits,",
    ),
    (
        {"api.incomingBucket": "images", "api.processedBucket": "images"},
        "api.processedBucket: must differ from api.incomingBucket (images)",
    ),
    (
        {"namespace": "default"},
        "namespace: is in every cluster: choose another, or set namespaceExists=true",
    ),
    (
        {"namespace": "kube-system"},
        "namespace: is in every cluster: choose another, or set namespaceExists=true",
    ),
    (
        {"namespace": "kube-public"},
        "namespace: is in every cluster: choose another, or set namespaceExists=true",
    ),
    ({"namespaceExists": "maybe"}, 'namespaceExists: must be true or false, got "maybe"'),
    (
        {"sitemaps.baseUrl": "https://cdn.example.com/sitemaps"},
        "sitemaps.baseUrl: must be http(s)://sitemaps.kube-image-processing.test/sitemaps",
    ),
    ({"minio.allowedCidrs": "10.0.0.0/8"}, 'minio.allowedCidrs: must be a list, got "10.0.0.0/8"'),
    (
        {"minio.allowedCidrs": ["10.0.0.1/8"]},
        "minio.allowedCidrs[0]: must be a CIDR such as 10.0.0.0/24 (host bits zero), got",
    ),
    ({"minio.allowDataLoss": "yes"}, 'minio.allowDataLoss: must be true or false, got "yes"'),
    (
        {"kubernetes.clusterDomain": "10.96.0.10"},
        'kubernetes.clusterDomain: must be a DNS host name, not an IP address, got "10.96.0.10"',
    ),
    (
        {"kubernetes.clusterDomian": "x.local"},
        "kubernetes.clusterDomian: is not a known key; did you mean clusterDomain?",
    ),
    (
        {"sitemaps.source": "sql"},
        "sitemaps.source: sql takes sitemaps.query or sitemaps.sections (one of them)",
    ),
    (
        {"sitemaps.baseUrl": "http://x.example.com/maps"},
        "sitemaps.baseUrl: must be http(s)://sitemaps.kube-image-processing.test/sitemaps",
    ),
    (
        {"api.host": "sitemaps.kube-image-processing.test"},
        "sitemaps.host: must differ from api.host (sitemaps.kube-image-processing.test)",
    ),
    (
        {"api.resources.requests.memory": "1Gi", "api.resources.limits.memory": "512Mi"},
        "api.resources.limits.memory: 512Mi is below requests.memory (1Gi)",
    ),
    ({"minio.storageSize": "0"}, "minio.storageSize: must be larger than 0, got 0"),
    ({"minio": "four"}, 'minio: must be an object of keys and values, got "four"'),
    (
        {"apiReplicas": 3},
        "apiReplicas: is not a known key; known keys here: api, image, ingress, kubernetes,",
    ),
    (
        {"sitemaps.siteUrl": "images.example.com"},
        'sitemaps.siteUrl: must be an absolute http(s) URL, got "images.example.com"',
    ),
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
    assert config.image.pushes
    assert config.image.username is None
    assert config.secret("registryPassword") is None


def test_registry_with_a_path_is_split_into_host_and_repository() -> None:
    config = parse_stack_config(
        {"image": {"registry": "ghcr.io/org/team"}, "api": {"host": "images.example.test"}}, {}
    )
    assert registry_host(config.image) == "ghcr.io"
    assert image_name(config.image) == "ghcr.io/org/team/kube-image-processing"


def test_platform_is_left_to_the_daemon_without_a_push() -> None:
    assert build_platform(parse({}).image) is None
    assert build_platform(parse({"image.platform": "linux/arm64"}).image) == "linux/arm64"
    pushed = parse_stack_config(
        {"image": {"registry": "registry.example.com"}, "api": {"host": "images.example.test"}}, {}
    )
    assert build_platform(pushed.image) == "linux/amd64"


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
    assert config.image.pushes
    assert image_name(config.image) == "registry.example.com:5000/kube-image-processing"


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
        ("bad-replicas", "api.replicas: must be an integer from 1 to 2147483647, got -1"),
        ("bad-schedule", "sitemaps.schedule: is not a cron schedule: expected 5 fields"),
        ("prod-without-secret", "image.username: needs its token: pulumi config set --secret"),
        ("bare", "sitemaps.source: bucket needs api.host or sitemaps.siteUrl"),
        ("no-api-host-bucket-sitemaps", "sitemaps.source: bucket needs api.host or sitemaps.site"),
        ("tls-without-api-host", "ingress.tls: needs api.host"),
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
