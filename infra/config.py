"""Typed, validated stack configuration: one frozen dataclass per concern."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pulumi

from infra.cron import CronError, validate_schedule
from service.settings import REGION, SettingsError, StorageSettings

PROJECT = "kube-image-processing"

# MinIO's last community image, frozen (no security fixes), pinned to its multi-arch index
# digest as public pins of this tag record it; SILO_IMAGE is the maintained drop-in (README).
DEFAULT_MINIO_IMAGE = (
    "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
    "@sha256:14cea493d9a34af32f524e538b8346cf79f3321eff8e708c1e2960462bd8936e"
)
SILO_IMAGE = (
    "docker.io/pgsty/silo:RELEASE.2026-09-16T00-00-00Z"
    "@sha256:635197cb9f36d01bee221d34d1c7d7960f6a95c48b0b6c01d99cd13bdae51a46"
)
SUPPORTED_INGRESS_CLASSES = ("nginx",)
SUPPORTED_PLATFORMS = ("linux/amd64", "linux/arm64")
ANTI_AFFINITY_MODES = ("soft", "hard")
SITEMAP_SOURCES = ("bucket", "sql")
SECRET_KEYS = (
    "minioRootUser",
    "minioRootPassword",
    "registryPassword",
    "sitemapDatabaseUrl",
    "storageAccessKey",
    "storageSecretKey",
)
ROUTING_KINDS = ("ingress", "gateway")
STORAGE_KINDS = ("minio", "external")
MAX_ERASURE_SET = 16
# MinIO refuses to start with shorter root credentials.
MIN_ROOT_USER_LENGTH = 3
MIN_ROOT_PASSWORD_LENGTH = 8
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
# Namespaces Kubernetes creates in every cluster: the stack would adopt them and, on destroy,
# delete them.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CLUSTER_ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
ISSUER_ANNOTATION = "cert-manager.io/issuer"
TLS_KEYS = ("secretName", "clusterIssuer", "issuer")

_SECTION_NAME = re.compile(r"^[a-z0-9-]{1,40}$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_REGISTRY = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_IMAGE_REF = re.compile(
    r"^(?P<name>[a-z0-9]([-a-z0-9.:]*[a-z0-9])?(/[a-z0-9]+([._-][a-z0-9]+)*)+|[a-z0-9]+([._-][a-z0-9]+)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_SUFFIX_FACTORS = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


class ConfigError(pulumi.RunError):
    """A stack config value is wrong; the message names the key and what is allowed."""


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity such as `500m` or `5Gi`; ValueError if malformed."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(text)
    suffix = match.group("suffix") or ""
    number = Decimal(match.group("number"))
    if suffix[:1] in ("e", "E"):
        try:
            return number * Decimal(10) ** int(suffix[1:])
        except InvalidOperation as exc:  # pragma: no cover - regex guarantees digits
            raise ValueError(text) from exc
    return number * _SUFFIX_FACTORS[suffix]


@dataclass(frozen=True)
class Resources:
    """Container requests and limits for cpu and memory."""

    requests: Mapping[str, str]
    limits: Mapping[str, str]


@dataclass(frozen=True)
class KubernetesConfig:
    """Which cluster the provider talks to."""

    context: str | None
    kubeconfig: str | None
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN


@dataclass(frozen=True)
class TlsConfig:
    """HTTPS on both hosts: an existing certificate Secret, or one a cert-manager issuer makes.

    Exactly one of the three is set. With an issuer, cert-manager's ingress-shim creates the
    Secret that each Ingress names (`<ingress>-tls`).
    """

    secret_name: str | None
    cluster_issuer: str | None
    issuer: str | None


@dataclass(frozen=True)
class IngressConfig:
    """Settings shared by every Ingress of the stack."""

    class_name: str
    skip_await: bool
    tls: TlsConfig | None = None

    @property
    def scheme(self) -> str:
        """The scheme of the public URLs: https once the Ingresses terminate TLS."""
        return "https" if self.tls else "http"


@dataclass(frozen=True)
class GatewayConfig:
    """The existing Gateway (and optionally one of its listeners) that the HTTPRoutes attach to.

    The program never creates the Gateway or its controller: the cluster's operator owns them.
    """

    name: str
    namespace: str
    section_name: str | None
    https: bool
    proxy_pod_labels: Mapping[str, str]
    # timeouts.request on the API route: an Extended feature not every controller supports.
    request_timeout: bool = True


@dataclass(frozen=True)
class RoutingConfig:
    """How requests reach the API and the sitemaps: nginx Ingresses, or Gateway API HTTPRoutes."""

    kind: str = "ingress"
    gateway: GatewayConfig | None = None


@dataclass(frozen=True)
class ExternalStorageConfig:
    """An S3 endpoint outside the stack, reached with credentials from the stack's secrets."""

    host: str
    port: int
    tls: bool
    region: str | None
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]

    @property
    def endpoint(self) -> str:
        """`host:port`, as MINIO_ENDPOINT takes it."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class StorageConfig:
    """Where the objects live: the in-cluster MinIO StatefulSet, or an external S3 endpoint."""

    kind: str = "minio"
    external: ExternalStorageConfig | None = None


@dataclass(frozen=True)
class MinioConfig:
    """The MinIO StatefulSet and its credentials."""

    replicas: int
    image: str
    storage_size: str
    storage_class: str | None
    anti_affinity: str
    ci_cd_mode: bool
    resources: Resources
    root_user: pulumi.Output[str] | None
    root_password: pulumi.Output[str] | None
    allow_data_loss: bool = False
    allowed_cidrs: tuple[str, ...] = ()

    @property
    def distributed(self) -> bool:
        """Two or more replicas run one distributed, erasure-coded server."""
        return self.replicas >= 2


@dataclass(frozen=True)
class ImageConfig:
    """How the application image is built, tagged, pushed and pulled."""

    repository: str
    registry: str | None
    username: str | None
    password: pulumi.Output[str] | None
    push: bool
    platform: str | None
    build_on_preview: bool

    @property
    def name(self) -> str:
        """The image name without a tag, registry-qualified when a registry is set."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository


@dataclass(frozen=True)
class ApiConfig:
    """The image API Deployment, its Service and its Ingress."""

    replicas: int
    resources: Resources
    node_port: int | None
    host: str | None
    fetch_timeout_seconds: int
    max_download_bytes: int
    max_image_pixels: int
    web_concurrency: int
    incoming_bucket: str
    processed_bucket: str

    @property
    def proxy_read_timeout_seconds(self) -> int:
        """Longer than the API's whole download, which is bounded by about 3 x the fetch timeout."""
        return 3 * self.fetch_timeout_seconds + 30


@dataclass(frozen=True)
class SitemapSection:
    """One named family of sitemap files from one SQL query."""

    name: str
    query: str


@dataclass(frozen=True)
class SitemapsConfig:
    """The sitemap publisher CronJob and the Ingress it switches."""

    enabled: bool
    schedule: str
    host: str
    base_url: str
    site_url: str | None
    source: str
    query: str | None
    database_url: pulumi.Output[str] | None
    retain: int
    backoff_limit: int
    active_deadline_seconds: int
    scratch_size: str
    resources: Resources
    sections: tuple[SitemapSection, ...] = ()

    @property
    def index_url(self) -> str:
        """The public URL of the sitemap index."""
        return f"{self.base_url}/sitemap.xml"

    def sections_json(self) -> str:
        """SITEMAP_SECTIONS, the contract with the job: `[{"name": ..., "query": ...}]`."""
        return json.dumps([{"name": s.name, "query": s.query} for s in self.sections])


@dataclass(frozen=True)
class StackConfig:
    """The whole validated stack configuration."""

    namespace: str
    kubernetes: KubernetesConfig
    ingress: IngressConfig
    minio: MinioConfig
    image: ImageConfig
    api: ApiConfig
    sitemaps: SitemapsConfig
    namespace_exists: bool = False
    routing: RoutingConfig = RoutingConfig()
    storage: StorageConfig = StorageConfig()

    @property
    def scheme(self) -> str:
        """The scheme of the public URLs, whichever kind of routing serves them."""
        return public_scheme(self.ingress, self.routing)


def public_scheme(ingress: IngressConfig, routing: RoutingConfig) -> str:
    """https where the Ingresses or the Gateway's listener terminate TLS, else http."""
    if routing.gateway is not None:
        return "https" if routing.gateway.https else "http"
    return ingress.scheme


class _Section:
    """Reads one config object, naming each key by its full path in errors."""

    def __init__(self, path: str, raw: Any) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path} must be an object, got {json.dumps(raw)}")
        self.path = path
        self.raw: Mapping[str, Any] = raw
        self.known: list[str] = []

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _get(self, name: str) -> Any:
        self.known.append(name)
        return self.raw.get(name)

    def section(self, name: str) -> _Section:
        return _Section(self.key(name), self._get(name))

    def text(self, name: str, default: str) -> str:
        value = self.optional_text(name)
        return default if value is None else value

    def optional_text(self, name: str) -> str | None:
        value = self._get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{self.key(name)} must be a string, got {json.dumps(value)}")
        return value

    def integer(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.optional_integer(name, minimum, maximum)
        return default if value is None else value

    def optional_integer(self, name: str, minimum: int, maximum: int | None = None) -> int | None:
        value = self._get(name)
        if value is None or value == "":
            return None
        allowed = (
            f"an integer >= {minimum}"
            if maximum is None
            else (f"an integer from {minimum} to {maximum}")
        )
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
            number = int(value)
        if number is None or number < minimum or (maximum is not None and number > maximum):
            raise ConfigError(f"{self.key(name)} must be {allowed}, got {json.dumps(value)}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{self.key(name)} must be true or false, got {json.dumps(value)}")

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in allowed:
            raise ConfigError(
                f"{self.key(name)} must be one of {', '.join(allowed)}, got {json.dumps(value)}"
            )
        return value

    def quantity(self, name: str, default: str) -> str:
        value = self._get(name)
        if value is None or value == "":
            return default
        text = (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )
        if not isinstance(text, str):
            raise ConfigError(
                f"{self.key(name)} must be a Kubernetes quantity, got {json.dumps(value)}"
            )
        try:
            parse_quantity(text)
        except ValueError:
            raise ConfigError(
                f"{self.key(name)} must be a Kubernetes quantity such as 500m, 256Mi or 5Gi, "
                f"got {json.dumps(value)}"
            ) from None
        return text

    def hostname(self, name: str) -> str | None:
        value = self.optional_text(name)
        if value is None:
            return None
        if _is_ip_address(value):
            raise ConfigError(
                f"{self.key(name)} must be a DNS host name, not an IP address (an Ingress host "
                f"cannot be an IP; leave it unset to match every host), got {json.dumps(value)}"
            )
        if len(value) > 253 or not _HOSTNAME.match(value):
            raise ConfigError(
                f"{self.key(name)} must be a DNS host name such as api.example.com, "
                f"got {json.dumps(value)}"
            )
        long_label = next((label for label in value.split(".") if len(label) > 63), None)
        if long_label is not None:
            raise ConfigError(
                f"{self.key(name)} has a label of {len(long_label)} characters; each part "
                f"between dots may have at most 63, got {json.dumps(value)}"
            )
        return value

    def cidrs(self, name: str) -> tuple[str, ...]:
        value = self._get(name)
        if value is None or value == "":
            return ()
        items = value if isinstance(value, list) else None
        if items is None or not all(isinstance(item, str) for item in items):
            raise ConfigError(
                f"{self.key(name)} must be a list of CIDRs such as [10.0.0.0/24], "
                f"got {json.dumps(value)}"
            )
        for item in items:
            try:
                ipaddress.ip_network(item, strict=True)
            except ValueError:
                raise ConfigError(
                    f"{self.key(name)} has {json.dumps(item)}, which is not a CIDR such as "
                    "10.0.0.0/24 (host bits must be zero)"
                ) from None
        return tuple(items)

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - set(self.known))
        if unknown:
            raise ConfigError(
                f"unknown config key {self.key(unknown[0])}; allowed keys under "
                f"{self.path or PROJECT}: {', '.join(sorted(set(self.known)))}"
            )


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _resources(section: _Section, defaults: Resources) -> Resources:
    requests = section.section("requests")
    limits = section.section("limits")
    result = Resources(
        requests={
            "cpu": requests.quantity("cpu", defaults.requests["cpu"]),
            "memory": requests.quantity("memory", defaults.requests["memory"]),
        },
        limits={
            "cpu": limits.quantity("cpu", defaults.limits["cpu"]),
            "memory": limits.quantity("memory", defaults.limits["memory"]),
        },
    )
    for part in (requests, limits):
        part.finish()
    section.finish()
    for resource in ("cpu", "memory"):
        request, limit = result.requests[resource], result.limits[resource]
        if parse_quantity(limit) < parse_quantity(request):
            raise ConfigError(
                f"{section.key('limits')}.{resource} ({limit}) must not be below "
                f"{section.key('requests')}.{resource} ({request})"
            )
    return result


def _image_ref(section: _Section, name: str, default: str) -> str:
    value = section.text(name, default)
    match = _IMAGE_REF.match(value)
    if match is None or not (match.group("tag") or match.group("digest")):
        raise ConfigError(
            f"{section.key(name)} must be an image reference pinned by tag or digest, "
            f"such as {DEFAULT_MINIO_IMAGE}, got {json.dumps(value)}"
        )
    if match.group("tag") == "latest":
        raise ConfigError(
            f"{section.key(name)} must not use the tag latest; pin a release tag or a digest"
        )
    return value


def _erasure_layout_error(replicas: int) -> str | None:
    if replicas <= MAX_ERASURE_SET:
        return None
    if any(replicas % size == 0 for size in range(2, MAX_ERASURE_SET + 1)):
        return None
    return (
        f"minio.replicas={replicas} cannot be split into equal erasure sets of 2 to "
        f"{MAX_ERASURE_SET} drives; choose 1 (standalone), 2 to {MAX_ERASURE_SET}, "
        f"or a multiple of one of those"
    )


def _minio(root: _Section, secrets: Mapping[str, Any]) -> MinioConfig:
    section = root.section("minio")
    config = MinioConfig(
        replicas=section.integer("replicas", 1, minimum=1),
        image=_image_ref(section, "image", DEFAULT_MINIO_IMAGE),
        storage_size=section.quantity("storageSize", "10Gi"),
        storage_class=section.optional_text("storageClass"),
        anti_affinity=section.choice("antiAffinity", "soft", ANTI_AFFINITY_MODES),
        ci_cd_mode=section.boolean("ciCdMode", False),
        resources=_resources(
            section.section("resources"),
            Resources(
                requests={"cpu": "250m", "memory": "512Mi"},
                limits={"cpu": "1", "memory": "1Gi"},
            ),
        ),
        root_user=secrets.get("minioRootUser"),
        root_password=secrets.get("minioRootPassword"),
        allow_data_loss=section.boolean("allowDataLoss", False),
        allowed_cidrs=section.cidrs("allowedCidrs"),
    )
    section.finish()
    layout_error = _erasure_layout_error(config.replicas)
    if layout_error:
        raise ConfigError(layout_error)
    if config.ci_cd_mode and config.anti_affinity == "hard":
        raise ConfigError(
            "minio.ciCdMode=true (MINIO_CI_CD) is only for single-machine development "
            "clusters whose volumes sit on the root disk; it cannot be combined with "
            "minio.antiAffinity=hard. Remove minio.ciCdMode on multi-node stacks."
        )
    if parse_quantity(config.storage_size) <= 0:
        raise ConfigError(f"minio.storageSize must be larger than 0, got {config.storage_size}")
    return config


def _image(root: _Section, secrets: Mapping[str, Any]) -> ImageConfig:
    section = root.section("image")
    repository = section.text("repository", PROJECT)
    if not _REPOSITORY.match(repository):
        raise ConfigError(
            "image.repository must be a lowercase repository path such as "
            f"team/kube-image-processing, got {json.dumps(repository)}"
        )
    registry = section.optional_text("registry")
    if registry is not None:
        # `ghcr.io/org` names a host and a path: the path belongs in front of the repository.
        registry, _, path = registry.partition("/")
        if not _REGISTRY.match(registry) or (path and not _REPOSITORY.match(path)):
            raise ConfigError(
                "image.registry must be a registry host[:port] such as registry.example.com, "
                "optionally with a path such as ghcr.io/org, "
                f"got {json.dumps(section.raw.get('registry'))}"
            )
        if path:
            repository = f"{path}/{repository}"
    username = section.optional_text("username")
    password = secrets.get("registryPassword")
    push = section.boolean("push", registry is not None)
    platform = section.optional_text("platform")
    if platform is not None and platform not in SUPPORTED_PLATFORMS:
        raise ConfigError(
            f"image.platform must be one of {', '.join(SUPPORTED_PLATFORMS)}, "
            f"got {json.dumps(platform)}"
        )
    config = ImageConfig(
        repository=repository,
        registry=registry,
        username=username,
        password=password,
        push=push,
        # Without a push the image is loaded into the daemon that builds it, so that daemon's
        # own architecture is right; a pushed image defaults to the usual node architecture.
        platform=platform or ("linux/amd64" if push else None),
        build_on_preview=section.boolean("buildOnPreview", True),
    )
    section.finish()
    if config.push and registry is None:
        raise ConfigError("image.push=true needs image.registry: there is nowhere to push to")
    if registry is not None and (username is None) != (password is None):
        raise ConfigError(
            f"image.registry={registry} needs both image.username and the secret "
            "registryPassword (pulumi config set --secret registryPassword <token>), or neither "
            "(Docker's credential helpers push, and the nodes pull with their own credentials)"
        )
    if registry is None and (username is not None or password is not None):
        raise ConfigError(
            "image.username and registryPassword are only allowed with image.registry"
        )
    return config


def _api(root: _Section) -> ApiConfig:
    section = root.section("api")
    config = ApiConfig(
        replicas=section.integer("replicas", 2, minimum=1),
        resources=_resources(
            section.section("resources"),
            Resources(
                requests={"cpu": "100m", "memory": "256Mi"},
                limits={"cpu": "1", "memory": "512Mi"},
            ),
        ),
        node_port=section.optional_integer("nodePort", minimum=30000, maximum=32767),
        host=section.hostname("host"),
        fetch_timeout_seconds=section.integer("fetchTimeoutSeconds", 10, minimum=1, maximum=300),
        max_download_bytes=section.integer("maxDownloadBytes", 20 * 1024 * 1024, minimum=1),
        max_image_pixels=section.integer("maxImagePixels", 50_000_000, minimum=1),
        web_concurrency=section.integer("webConcurrency", 2, minimum=1, maximum=64),
        incoming_bucket=section.text("incomingBucket", "incoming"),
        processed_bucket=section.text("processedBucket", "processed"),
    )
    section.finish()
    _check_buckets(config)
    return config


def _check_buckets(config: ApiConfig) -> None:
    """Refuse the bucket names the service would refuse at start, by its own rule."""
    keys = {"INCOMING_BUCKET": "api.incomingBucket", "PROCESSED_BUCKET": "api.processedBucket"}
    environment = {
        "MINIO_ENDPOINT": "minio:9000",
        "MINIO_ACCESS_KEY": "checked-elsewhere",
        "MINIO_SECRET_KEY": "checked-elsewhere",
        "INCOMING_BUCKET": config.incoming_bucket,
        "PROCESSED_BUCKET": config.processed_bucket,
    }
    try:
        StorageSettings.from_env(environment)
    except SettingsError as exc:
        variable = next((name for name in keys if str(exc).startswith(name)), None)
        key = keys.get(variable or "", "api bucket")
        raise ConfigError(f"{key} would stop the API at start: {exc}") from None
    if config.incoming_bucket == config.processed_bucket:
        raise ConfigError(
            "api.incomingBucket and api.processedBucket must differ, both are "
            f"{json.dumps(config.incoming_bucket)}"
        )


def _tls(ingress: _Section) -> TlsConfig | None:
    """`ingress.tls`: one of secretName, clusterIssuer or issuer; absent means plain HTTP."""
    section = ingress.section("tls")
    names = {key: section.optional_text(key) for key in TLS_KEYS}
    section.finish()
    given = {key: value for key, value in names.items() if value is not None}
    if not given:
        return None
    if len(given) > 1:
        raise ConfigError(
            f"ingress.tls takes one of {', '.join(TLS_KEYS)}, got {', '.join(sorted(given))}"
        )
    ((key, value),) = given.items()
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ConfigError(
            f"ingress.tls.{key} must be a Kubernetes object name (lowercase letters, digits, "
            f"'-' and '.'), got {json.dumps(value)}"
        )
    return TlsConfig(
        secret_name=names["secretName"],
        cluster_issuer=names["clusterIssuer"],
        issuer=names["issuer"],
    )


def _sections(section: _Section) -> tuple[SitemapSection, ...]:
    """`sitemaps.sections`: a list of `{name, query}`, names unique and fit for file names."""
    raw = section._get("sections")
    if raw is None or raw == []:
        return ()
    key = section.key("sections")
    if not isinstance(raw, list):
        raise ConfigError(f"{key} must be a list of {{name, query}}, got {json.dumps(raw)}")
    sections: list[SitemapSection] = []
    for number, item in enumerate(raw):
        entry = _Section(f"{key}[{number}]", item)
        name = entry.optional_text("name")
        query = entry.optional_text("query")
        entry.finish()
        if name is None or query is None:
            raise ConfigError(f"{key}[{number}] needs both name and query")
        if not _SECTION_NAME.match(name):
            raise ConfigError(
                f"{key}[{number}].name must be 1 to 40 lowercase letters, digits or '-', "
                f"got {json.dumps(name)}"
            )
        if any(known.name == name for known in sections):
            raise ConfigError(f"{key}[{number}].name {json.dumps(name)} is used twice")
        sections.append(SitemapSection(name=name, query=query))
    return tuple(sections)


def _sitemaps(
    root: _Section, secrets: Mapping[str, Any], api: ApiConfig, scheme: str = "http"
) -> SitemapsConfig:
    section = root.section("sitemaps")
    enabled = section.boolean("enabled", True)
    schedule = section.text("schedule", "0 3 * * *")
    try:
        validate_schedule(schedule)
    except CronError as exc:
        raise ConfigError(
            f"sitemaps.schedule {json.dumps(schedule)} is not a cron schedule: {exc}"
        ) from None
    host = section.hostname("host") or "sitemaps.kube-image-processing.test"
    base_url = section.text("baseUrl", f"{scheme}://{host}/sitemaps").rstrip("/")
    if not re.match(r"^https?://[^/\s]+/sitemaps$", base_url):
        raise ConfigError(
            "sitemaps.baseUrl must be an absolute http(s) URL ending in /sitemaps, where the "
            f"sitemaps Ingress serves the files, got {json.dumps(base_url)}"
        )
    base_host = base_url.split("/")[2]
    if base_host.rsplit(":", 1)[0] != host:
        raise ConfigError(
            f"sitemaps.baseUrl must be served by the sitemaps Ingress, so its host must be "
            f"sitemaps.host ({host}), got {json.dumps(base_url)}"
        )
    site_url = section.optional_text("siteUrl")
    if site_url is None and api.host is not None:
        site_url = f"{scheme}://{api.host}"
    if site_url is not None:
        site_url = site_url.rstrip("/")
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", site_url):
            raise ConfigError(
                "sitemaps.siteUrl must be the absolute http(s) URL of the API, "
                f"got {json.dumps(site_url)}"
            )
    config = SitemapsConfig(
        enabled=enabled,
        schedule=schedule,
        host=host,
        base_url=base_url,
        site_url=site_url,
        source=section.choice("source", "bucket", SITEMAP_SOURCES),
        query=section.optional_text("query"),
        database_url=secrets.get("sitemapDatabaseUrl"),
        retain=section.integer("retain", 1, minimum=0),
        backoff_limit=section.integer("backoffLimit", 2, minimum=0, maximum=20),
        active_deadline_seconds=section.integer("activeDeadlineSeconds", 3600, minimum=60),
        scratch_size=section.quantity("scratchSize", "2Gi"),
        sections=_sections(section),
        resources=_resources(
            section.section("resources"),
            Resources(
                requests={"cpu": "250m", "memory": "256Mi"},
                limits={"cpu": "2", "memory": "512Mi"},
            ),
        ),
    )
    section.finish()
    if config.sections and config.source != "sql":
        raise ConfigError(
            "sitemaps.sections needs sitemaps.source=sql: the bucket source is one section"
        )
    if config.query and config.source != "sql":
        raise ConfigError(
            "sitemaps.query needs sitemaps.source=sql: the bucket source lists the API's images"
        )
    if config.sections and config.query:
        raise ConfigError(
            "sitemaps.sections and sitemaps.query exclude each other: put the query in a section"
        )
    if config.source == "sql" and (
        config.database_url is None or not (config.query or config.sections)
    ):
        raise ConfigError(
            "sitemaps.source=sql needs sitemaps.query and the secret sitemapDatabaseUrl "
            "(pulumi config set --secret sitemapDatabaseUrl <sqlalchemy-url>); "
            "sitemaps.sections may replace sitemaps.query"
        )
    if config.enabled and config.source == "bucket" and config.site_url is None:
        # Without a host of its own the API answers on the Ingress's default server, whose
        # public name the program cannot know; any guess would publish 404s.
        raise ConfigError(
            "sitemaps.source=bucket lists images under the API's public URL, which is unknown: "
            "set api.host (or sitemaps.siteUrl), or sitemaps.enabled=false"
        )
    if scheme == "https":
        for key, url in (("baseUrl", config.base_url), ("siteUrl", config.site_url)):
            if url is not None and url.startswith("http://"):
                raise ConfigError(
                    f"sitemaps.{key} must be https with ingress.tls set (plain http redirects), "
                    f"got {json.dumps(url)}"
                )
    if api.host is not None and api.host == config.host:
        raise ConfigError(
            f"sitemaps.host must differ from api.host ({api.host}): ingress-nginx applies the "
            "sitemaps regex and rewrite to every path of the same host"
        )
    return config


def _pod_labels(section: _Section, name: str) -> dict[str, str]:
    """A label selector's matchLabels: label keys (optionally prefixed) to label values."""
    raw = section._get(name)
    key = section.key(name)
    if raw is None or raw == {}:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(label, str) and isinstance(value, str) for label, value in raw.items()
    ):
        raise ConfigError(f"{key} must map label keys to values, got {json.dumps(raw)}")
    for label, value in raw.items():
        prefix, _, label_name = label.rpartition("/")
        if (
            not label_name
            or len(label_name) > 63
            or not _LABEL_NAME.match(label_name)
            or (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))
            or len(value) > 63
            or not _LABEL_NAME.match(value)
        ):
            raise ConfigError(
                f"{key} has {json.dumps(label)}: {json.dumps(value)}, which is not a Kubernetes "
                "label (key: [prefix/]name, name and value up to 63 of letters, digits, '-_.')"
            )
    return dict(raw)


def _object_name(section: _Section, name: str, default: str | None = None) -> str | None:
    value = section.optional_text(name) or default
    if value is not None and (len(value) > 253 or not _DNS_SUBDOMAIN.match(value)):
        raise ConfigError(
            f"{section.key(name)} must be a Kubernetes object name (lowercase letters, digits, "
            f"'-' and '.'), got {json.dumps(value)}"
        )
    return value


def _routing(root: _Section, namespace: str, ingress: IngressConfig) -> RoutingConfig:
    """`routing`: `kind: ingress` (today's nginx Ingresses) or `kind: gateway` plus its Gateway."""
    section = root.section("routing")
    kind = section.choice("kind", "ingress", ROUTING_KINDS)
    gateway = section.section("gateway")
    name = _object_name(gateway, "name")
    gateway_config = GatewayConfig(
        name=name or "",
        namespace=_object_name(gateway, "namespace", namespace) or namespace,
        section_name=_object_name(gateway, "sectionName"),
        https=gateway.boolean("https", False),
        proxy_pod_labels=_pod_labels(gateway, "proxyPodLabels"),
        request_timeout=gateway.boolean("requestTimeout", True),
    )
    if len(gateway_config.namespace) > 63 or not _DNS_LABEL.match(gateway_config.namespace):
        raise ConfigError(
            "routing.gateway.namespace must be a namespace name (a DNS label), "
            f"got {json.dumps(gateway_config.namespace)}"
        )
    gateway.finish()
    section.finish()
    if kind == "ingress":
        if gateway.raw:
            raise ConfigError(
                "routing.gateway is only read with routing.kind=gateway; remove it or set "
                "routing.kind=gateway"
            )
        return RoutingConfig()
    if name is None:
        raise ConfigError(
            "routing.kind=gateway needs routing.gateway.name: the existing Gateway the "
            "HTTPRoutes attach to (the program does not create one)"
        )
    if ingress.tls is not None:
        raise ConfigError(
            "ingress.tls is for the nginx Ingresses; with routing.kind=gateway the Gateway's "
            "listener terminates TLS: remove ingress.tls and set routing.gateway.https=true"
        )
    return RoutingConfig(kind=kind, gateway=gateway_config)


def _endpoint(section: _Section) -> tuple[str, int]:
    value = section.optional_text("endpoint")
    key = section.key("endpoint")
    if value is None:
        raise ConfigError(
            f"storage.kind=external needs {key}: the S3 endpoint as host:port, "
            "such as s3.storage.example.com:9000"
        )
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if (
        not host
        or not port.isdigit()
        or not 1 <= int(port) <= 65535
        or not (_is_ip_address(host) or (len(host) <= 253 and _DNS_SUBDOMAIN.match(host)))
    ):
        raise ConfigError(
            f"{key} must be host:port without a scheme, such as s3.storage.example.com:9000, "
            f"got {json.dumps(value)}"
        )
    return host, int(port)


def _storage(root: _Section, secrets: Mapping[str, Any]) -> StorageConfig:
    """`storage`: `kind: minio` (the StatefulSet) or `kind: external` with an S3 endpoint."""
    section = root.section("storage")
    kind = section.choice("kind", "minio", STORAGE_KINDS)
    if kind == "minio":
        if section.raw.keys() & {"endpoint", "tls", "region"}:
            raise ConfigError(
                "storage.endpoint, storage.tls and storage.region are only read with "
                "storage.kind=external"
            )
        section.finish()
        if "storageAccessKey" in secrets or "storageSecretKey" in secrets:
            raise ConfigError(
                "the secrets storageAccessKey and storageSecretKey are only read with "
                "storage.kind=external; MinIO's own credentials are minioRootUser and "
                "minioRootPassword"
            )
        return StorageConfig()
    host, port = _endpoint(section)
    tls = section.boolean("tls", True)
    region = section.optional_text("region")
    section.finish()
    if region is not None and not REGION.fullmatch(region):
        raise ConfigError(
            f"storage.region must be a region name such as eu-west-1, got {json.dumps(region)}"
        )
    access_key = secrets.get("storageAccessKey")
    secret_key = secrets.get("storageSecretKey")
    if access_key is None or secret_key is None:
        raise ConfigError(
            "storage.kind=external needs the secrets storageAccessKey and storageSecretKey "
            "(pulumi config set --secret storageAccessKey <key>, and the same for "
            "storageSecretKey)"
        )
    if "minioRootUser" in secrets or "minioRootPassword" in secrets:
        raise ConfigError(
            "minioRootUser and minioRootPassword are MinIO's; with storage.kind=external "
            "the credentials are storageAccessKey and storageSecretKey"
        )
    return StorageConfig(
        kind=kind,
        external=ExternalStorageConfig(
            host=host,
            port=port,
            tls=tls,
            region=region,
            access_key=access_key,
            secret_key=secret_key,
        ),
    )


def _check_sitemaps_route(config: StackConfig) -> None:
    """Refuse a sitemaps route that could never reach the live bucket on external storage."""
    external = config.storage.external
    if external is None or not config.sitemaps.enabled:
        return
    if external.tls:
        raise ConfigError(
            "sitemaps.enabled with storage.tls=true is not supported: the sitemaps route "
            "would have to speak HTTPS to the S3 endpoint (ingress-nginx backend-protocol, or a "
            "Gateway API BackendTLSPolicy), which this program does not create; use a plain-HTTP "
            "endpoint inside the cluster's network (storage.tls=false), or sitemaps.enabled=false"
        )
    if _is_ip_address(external.host):
        raise ConfigError(
            "the sitemaps route reaches external storage through an ExternalName Service, "
            f"which needs a DNS name: storage.endpoint has the IP address {external.host}"
        )


def _check_proxy_access(config: StackConfig) -> None:
    """MinIO's NetworkPolicy must admit the Gateway's proxy pods for the sitemaps route."""
    gateway = config.routing.gateway
    if (
        gateway is None
        or config.storage.kind != "minio"
        or not config.sitemaps.enabled
        or gateway.proxy_pod_labels
        or config.minio.allowed_cidrs
    ):
        return
    raise ConfigError(
        "routing.kind=gateway with MinIO's sitemaps needs routing.gateway.proxyPodLabels (the "
        "labels of the Gateway's proxy pods, which MinIO's NetworkPolicy then admits), or "
        "minio.allowedCidrs for proxies on the host network"
    )


def parse_stack_config(raw: Mapping[str, Any], secrets: Mapping[str, Any]) -> StackConfig:
    """Validate plain config values (objects already decoded) plus secret Outputs by key."""
    root = _Section("", raw)
    namespace = root.text("namespace", PROJECT)
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise ConfigError(
            "namespace must be a DNS label (lowercase letters, digits and '-', at most 63), "
            f"got {json.dumps(namespace)}"
        )
    namespace_exists = root.boolean("namespaceExists", False)
    if not namespace_exists and namespace in SYSTEM_NAMESPACES:
        raise ConfigError(
            f"namespace {namespace} exists in every cluster, so the stack cannot own it (it "
            "would delete it on destroy); choose another, or set namespaceExists=true to deploy "
            "into it without creating it"
        )
    kube = _kubernetes(root)
    ingress = root.section("ingress")
    ingress_config = IngressConfig(
        class_name=ingress.choice("className", "nginx", SUPPORTED_INGRESS_CLASSES),
        skip_await=ingress.boolean("skipAwait", False),
        tls=_tls(ingress),
    )
    ingress.finish()
    minio = _minio(root, secrets)
    image = _image(root, secrets)
    api = _api(root)
    if ingress_config.tls is not None and api.host is None:
        raise ConfigError(
            "ingress.tls needs api.host: a certificate names hosts, and the API has none"
        )
    routing = _routing(root, namespace, ingress_config)
    storage = _storage(root, secrets)
    sitemaps = _sitemaps(root, secrets, api, public_scheme(ingress_config, routing))
    for key in SECRET_KEYS:
        root.known.append(key)
    root.finish()
    config = StackConfig(
        namespace=namespace,
        kubernetes=kube,
        ingress=ingress_config,
        minio=minio,
        image=image,
        api=api,
        sitemaps=sitemaps,
        namespace_exists=namespace_exists,
        routing=routing,
        storage=storage,
    )
    _check_sitemaps_route(config)
    _check_proxy_access(config)
    return config


def _kubernetes(root: _Section) -> KubernetesConfig:
    section = root.section("kubernetes")
    cluster_domain = section.hostname("clusterDomain") or DEFAULT_CLUSTER_DOMAIN
    config = KubernetesConfig(
        context=section.optional_text("context"),
        kubeconfig=section.optional_text("kubeconfig"),
        cluster_domain=cluster_domain,
    )
    section.finish()
    return config


_OBJECT_KEYS = ("kubernetes", "ingress", "minio", "image", "api", "sitemaps", "routing", "storage")


def _project_keys() -> set[str]:
    """Every `kube-image-processing:*` key the stack sets, to report misspelt ones."""
    names = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    prefix = f"{PROJECT}:"
    return {name[len(prefix) :] for name in names if name.startswith(prefix)}


def load_config() -> StackConfig:
    """Read `kube-image-processing:*` stack config and validate it; ConfigError on a bad value."""
    config = pulumi.Config(PROJECT)
    raw: dict[str, Any] = {}
    for key in sorted(_project_keys() - set(SECRET_KEYS)):
        text = config.get(key)
        if text is None:
            continue
        if key not in _OBJECT_KEYS:
            raw[key] = text
            continue
        try:
            raw[key] = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(
                f"{key} must be an object (set its fields with pulumi config set --path {key}.<field>)"
            ) from None
    secrets = {key: config.get_secret(key) for key in SECRET_KEYS}
    return parse_stack_config(
        raw, {key: value for key, value in secrets.items() if value is not None}
    )
