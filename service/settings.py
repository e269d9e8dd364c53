"""The environment contract: every setting's env name, type, default, bounds and description, once.

The image API and the sitemap job read these at start-up. The Pulumi program builds each
container's env from them (`env_name`, `env_pairs`), and docs/configuration.md and
`python -m service.serve --help` are generated from them.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from service.fields import (
    EnvFlag,
    Integer,
    KindChecked,
    Number,
    Text,
    checked,
    keys_of,
    matching,
    problem,
)

MIB = 1024 * 1024
# What the processes cost before any conversion, with room to spare (measured idle: master
# 46 MiB, worker 52 MiB); conversions get the rest of the memory limit.
MASTER_BYTES = 48 * MIB
WORKER_BYTES = 112 * MIB
MIN_CONVERSION_BUDGET_BYTES = 16 * MIB
# A whole download (every redirect, connect and read) gets this many fetch timeouts.
DOWNLOAD_DEADLINE_FACTOR = 3
# What a proxy in front of the API adds to the download deadline before it gives up on a
# request: the conversion-free rest of POST /incoming (storing the image) fits in it.
ROUTE_MARGIN_SECONDS = 30


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it in one line."""


def setting(
    env: str,
    *fallbacks: str,
    default: Any = ...,
    description: str,
    secret: bool = False,
    **rules: Any,
) -> Any:
    """One setting: read from `env` (else from each fallback), with its default and bounds."""
    alias: str | AliasChoices = AliasChoices(env, *fallbacks) if fallbacks else env
    return Field(default, validation_alias=alias, description=description, repr=not secret, **rules)


class EnvSettings(KindChecked):
    """A group of settings read from the environment; an empty value counts as unset."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings in `env` (the process environment by default); SettingsError if wrong."""
        source = os.environ if env is None else env
        names = {key for info in cls.model_fields.values() for key in keys_of(info)}
        values = {key: source[key].strip() for key in names & source.keys() if source[key].strip()}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise SettingsError(_explain(cls, error, values)) from None


def _explain(model: type[EnvSettings], error: ValidationError, values: dict[str, str]) -> str:
    loc, what = problem(model, error, values)
    info = model.model_fields.get(str(loc[0])) or next(
        (i for i in model.model_fields.values() if loc[0] in keys_of(i)), None
    )
    keys = keys_of(info) if info is not None else (str(loc[0]),)
    also = (
        f" (or {', '.join(keys[1:])})" if len(keys) > 1 and what.startswith("is required") else ""
    )
    return f"{keys[0]}{also} {what}"


def env_name(model: type[EnvSettings], field: str) -> str:
    """The environment variable a setting is read from."""
    return keys_of(model.model_fields[field])[0]


def env_text(value: Any) -> str:
    """A value as an environment variable carries it: true/false, 10 rather than 10.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def default_text(info: FieldInfo) -> str:
    """A setting's default as documentation shows it: required, unset, or its env text."""
    if info.is_required():
        return "required"
    return "unset" if info.default is None else repr(env_text(info.default))


def env_pairs(settings: EnvSettings, *fields: str) -> list[tuple[str, str]]:
    """(name, value) of the named settings, in that order, as a container's env lists them."""
    model = type(settings)
    return [(env_name(model, field), env_text(getattr(settings, field))) for field in fields]


def field_problem(model: type[BaseModel], field: str, value: Any) -> str | None:
    """What is wrong with `value` for one field by that field's own rules, or None."""
    try:
        model.__pydantic_validator__.validate_assignment(model.model_construct(), field, value)
    except ValidationError as error:
        return problem(model, error, {field: value})[1]
    return None


def _is_bucket_name(name: str) -> bool:
    """S3's rules for a general purpose bucket's name (AWS's "Bucket naming rules")."""
    try:
        ipaddress.IPv4Address(name)
        return False
    except ValueError:
        pass
    reserved_prefix = name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
    reserved_suffix = name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"))
    return ".." not in name and not reserved_prefix and not reserved_suffix


BucketName = Annotated[
    Text,
    matching(
        r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
        "must be a valid S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-', "
        "starting and ending with a letter or digit",
    ),
    checked(
        _is_bucket_name,
        "must not hold '..', be an IP address, or take a reserved prefix (xn--) or suffix (-s3alias)",
    ),
]
# An S3 region name such as eu-west-1.
Region = Annotated[
    Text, matching(r"[a-z0-9][a-z0-9-]{0,62}", "must be a region name such as eu-west-1")
]
HttpUrl = Annotated[
    Text, matching(r"https?://[^\s/?#@]+(/[^\s#]*)?", "must be an absolute http(s) URL")
]
Seconds = Annotated[Number, Field(gt=0)]


class StorageSettings(EnvSettings):
    """Where the S3 storage (MinIO) is and which buckets the API uses."""

    endpoint: Annotated[Text, matching(r"[^/]+", "must be host:port without a scheme")] = setting(
        "MINIO_ENDPOINT", "minio_hostname", description="S3 endpoint as host:port, no scheme"
    )
    access_key: Text = setting(
        "MINIO_ACCESS_KEY", "minio_access_key", description="S3 access key", secret=True
    )
    secret_key: Text = setting(
        "MINIO_SECRET_KEY", "minio_secret_key", description="S3 secret key", secret=True
    )
    secure: EnvFlag = setting("MINIO_SECURE", default=False, description="reach S3 over HTTPS")
    incoming_bucket: BucketName = setting(
        "INCOMING_BUCKET", default="incoming", description="bucket of the downloaded images"
    )
    processed_bucket: BucketName = setting(
        "PROCESSED_BUCKET", default="processed", description="bucket of the greyscale images"
    )
    # Without it, the client asks the endpoint for each bucket's region first.
    region: Region | None = setting(
        "MINIO_REGION", default=None, description="S3 region; unset asks the endpoint"
    )


def download_deadline_seconds(fetch_timeout_seconds: float) -> float:
    """How long one whole download may take: every redirect, connect and read together."""
    return DOWNLOAD_DEADLINE_FACTOR * fetch_timeout_seconds


def route_timeout_seconds(fetch_timeout_seconds: float) -> int:
    """How long a proxy in front of the API must wait for POST /incoming to answer."""
    return math.ceil(download_deadline_seconds(fetch_timeout_seconds) + ROUTE_MARGIN_SECONDS)


class FetchSettings(EnvSettings):
    """Limits on downloading images from user-supplied URLs."""

    max_download_bytes: Annotated[Integer, Field(ge=1)] = setting(
        "MAX_DOWNLOAD_BYTES", default=20 * MIB, description="largest image download, in bytes"
    )
    max_image_pixels: Annotated[Integer, Field(ge=1)] = setting(
        "MAX_IMAGE_PIXELS",
        default=50_000_000,
        description="largest image, in pixels (all frames counted); bigger gets 422",
    )
    timeout_seconds: Annotated[Seconds, Field(le=300)] = setting(
        "FETCH_TIMEOUT_SECONDS",
        default=10.0,
        description="connect and read timeout of a download; the whole download gets "
        f"{DOWNLOAD_DEADLINE_FACTOR} times this",
    )
    allow_private_networks: EnvFlag = setting(
        "FETCH_ALLOW_PRIVATE_NETWORKS",
        default=False,
        description="allow downloads from private addresses (local development and tests only)",
    )

    @property
    def download_deadline_seconds(self) -> float:
        """How long one whole download may take."""
        return download_deadline_seconds(self.timeout_seconds)


class ApiSettings(EnvSettings):
    """How long the image API waits on storage before it answers 503."""

    storage_timeout_seconds: Seconds = setting(
        "STORAGE_TIMEOUT_SECONDS", default=10.0, description="longest wait on S3 before a 503"
    )


class RobotsSettings(EnvSettings):
    """What /robots.txt names: the sitemap index that lists this host's images, if any."""

    sitemap_index_url: HttpUrl | None = setting(
        "SITEMAP_INDEX_URL",
        default=None,
        description="the sitemap index that /robots.txt names (its Sitemap: line)",
    )


class ServingSettings(EnvSettings):
    """What one pod may spend on slow clients, slow origins and conversions."""

    header_timeout_seconds: Annotated[Integer, Field(ge=1)] = setting(
        "HEADER_TIMEOUT_SECONDS",
        default=5,
        description="seconds a client has for a request's headers; also the keep-alive idle time",
    )
    body_min_bytes_per_second: Annotated[Integer, Field(ge=1)] = setting(
        "BODY_MIN_BYTES_PER_SECOND",
        default=4096,
        description="a body gets HEADER_TIMEOUT_SECONDS plus its size at this rate; slower gets 408",
    )
    max_connections: Annotated[Integer, Field(ge=1)] = setting(
        "MAX_CONNECTIONS",
        default=1000,
        description="open connections per worker; past it the worker answers 503 at once",
    )
    max_downloads: Annotated[Integer, Field(ge=1)] = setting(
        "MAX_DOWNLOADS",
        default=8,
        description="downloads in flight per pod (all workers); past it POST /incoming gets 503",
    )
    memory_limit_bytes: Annotated[Integer, Field(ge=1)] = setting(
        "MEMORY_LIMIT_BYTES",
        default=512 * MIB,
        description="the container's memory limit; conversions may hold it less "
        f"{MASTER_BYTES // MIB} MiB and {WORKER_BYTES // MIB} MiB per worker",
    )
    conversion_timeout_seconds: Seconds = setting(
        "CONVERSION_TIMEOUT_SECONDS",
        default=30.0,
        description="a conversion still running then answers 503",
    )
    web_concurrency: Annotated[Integer, Field(ge=1, le=64)] = setting(
        "WEB_CONCURRENCY", default=2, description="gunicorn worker processes"
    )
    forwarded_allow_ips: Text = setting(
        "FORWARDED_ALLOW_IPS",
        default="",
        description="peers whose X-Forwarded-* and SCRIPT_NAME headers are trusted; none by default",
    )
    prometheus_multiproc_dir: Text | None = setting(
        "PROMETHEUS_MULTIPROC_DIR",
        default=None,
        description="empty writable directory for the workers' metrics; unset: a temporary one",
    )
    # glibc: two malloc arenas rather than eight per core, so memory freed after a big
    # conversion is not left spread over arenas that never shrink.
    malloc_arena_max: Annotated[Integer, Field(ge=1)] = setting(
        "MALLOC_ARENA_MAX", default=2, description="glibc malloc arenas per process"
    )


def conversion_budget(serving: ServingSettings, workers: int) -> int:
    """Bytes that conversions may hold at once in a pod: the limit less the processes' own."""
    return serving.memory_limit_bytes - MASTER_BYTES - WORKER_BYTES * workers


def _check_budget(serving: ServingSettings) -> None:
    workers = serving.web_concurrency
    if conversion_budget(serving, workers) < MIN_CONVERSION_BUDGET_BYTES:
        needed = (MASTER_BYTES + WORKER_BYTES * workers + MIN_CONVERSION_BUDGET_BYTES) // MIB
        raise SettingsError(
            f"{env_name(ServingSettings, 'memory_limit_bytes')}={serving.memory_limit_bytes} is "
            f"too small for {env_name(ServingSettings, 'web_concurrency')}={workers} workers: "
            f"give at least {needed} MiB"
        )


API_SETTINGS: tuple[type[EnvSettings], ...] = (
    StorageSettings,
    FetchSettings,
    ApiSettings,
    RobotsSettings,
    ServingSettings,
)


def check_all(env: Mapping[str, str] | None = None) -> None:
    """Raise SettingsError for the first setting of the image API that is missing or invalid."""
    for model in API_SETTINGS:
        model.from_env(env)
    _check_budget(ServingSettings.from_env(env))


class SitemapSettings(EnvSettings):
    """The sitemap job's options; each command-line flag overrides its variable."""

    base_url: HttpUrl | None = setting(
        "SITEMAP_BASE_URL", default=None, description="public URL the files are served under"
    )
    source: Literal["bucket", "sql"] | None = setting(
        "SITEMAP_SOURCE",
        default=None,
        description="where URLs come from; unset means sql when a database URL, query or "
        "section is given, else bucket",
    )
    site_url: HttpUrl | None = setting(
        "SITEMAP_SITE_URL",
        default=None,
        description="public URL of the API, for the bucket source; defaults to the base URL's "
        "origin",
    )
    database_url: Text = setting(
        "SITEMAP_DATABASE_URL",
        default="sqlite:///sitemaps.db",
        description="SQLAlchemy URL of the SQL source; postgresql:// uses psycopg",
        secret=True,
    )
    query: Text | None = setting(
        "SITEMAP_QUERY", default=None, description="SQL returning (loc, lastmod): one section"
    )
    sections: Text | None = setting(
        "SITEMAP_SECTIONS",
        default=None,
        description='named sections: a JSON array of {"name": ..., "query": ...}',
    )
    ingress: Text = setting(
        "SITEMAP_INGRESS", default="sitemaps", description="the Ingress the job switches"
    )
    httproute: Text | None = setting(
        "SITEMAP_HTTPROUTE",
        default=None,
        description="switch this Gateway API HTTPRoute instead of an Ingress",
    )
    accept_timeout: Annotated[Seconds, Field(le=3600)] = setting(
        "SITEMAP_ACCEPT_TIMEOUT",
        default=60.0,
        description="seconds to wait for the HTTPRoute's Gateway to accept a switch",
    )
    namespace: Text | None = setting(
        "SITEMAP_NAMESPACE",
        default=None,
        description="namespace of the Ingress or HTTPRoute; defaults to the pod's, else the "
        "kubeconfig context's, else default",
    )
    retain: Annotated[Integer, Field(ge=0)] = setting(
        "SITEMAP_RETAIN", default=1, description="earlier generations kept for rollback"
    )


class MinioServerSettings(EnvSettings):
    """The settings the MinIO server itself reads, as the MinIO StatefulSet sets them."""

    root_user: Annotated[Text, Field(min_length=3)] = setting(
        "MINIO_ROOT_USER", description="MinIO's root user (access key)", secret=True
    )
    root_password: Annotated[Text, Field(min_length=8)] = setting(
        "MINIO_ROOT_PASSWORD", description="MinIO's root password (secret key)", secret=True
    )
    # minikube's hostPath volumes sit on the node's root disk, which MinIO refuses otherwise.
    ci_cd: EnvFlag = setting(
        "MINIO_CI_CD",
        default=False,
        description="let MinIO use drives on the root disk (single-machine development only)",
    )


class KubeClientSettings(EnvSettings):
    """Where the sitemap job finds the Kubernetes API: in the pod, else a kubeconfig."""

    service_host: Text | None = setting(
        "KUBERNETES_SERVICE_HOST",
        default=None,
        description="set by Kubernetes in every pod: use the pod's own credentials",
    )
    kubeconfig: Text | None = setting(
        "KUBECONFIG", default=None, description="kubeconfig files outside a pod (path list)"
    )


# Every group, in the order the configuration reference lists them.
ALL_SETTINGS: tuple[type[EnvSettings], ...] = (
    *API_SETTINGS,
    SitemapSettings,
    KubeClientSettings,
    MinioServerSettings,
)
