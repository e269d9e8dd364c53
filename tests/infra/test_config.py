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


BAD_VALUES = [
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
    ({"image.registry": "registry.example.com"}, "needs image.username and the secret"),
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
    ["0 3 * * *", "*/15 * * * *", "0 0 1 jan,jul *", "30 2 * * mon-fri", "0 0 ? * 0", "@daily"],
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
        ("prod-without-secret", "needs image.username and the secret registryPassword"),
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
