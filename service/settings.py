"""Settings read once from the environment at start-up, and validated."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# An S3 region name (eu-west-1); the Pulumi program checks storage.region by the same rule.
REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


MIB = 1024 * 1024
# The dev stack's limit; a pod passes its own down from the container spec.
DEFAULT_MEMORY_LIMIT_BYTES = 512 * MIB
# What the processes cost before any conversion, with room to spare (measured idle: master
# 46 MiB, worker 52 MiB); conversions get the rest of the memory limit.
MASTER_BYTES = 48 * MIB
WORKER_BYTES = 112 * MIB
MIN_CONVERSION_BUDGET_BYTES = 16 * MIB


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it in one line."""


def _get(env: Mapping[str, str], name: str, *fallbacks: str, default: str | None = None) -> str:
    for key in (name, *fallbacks):
        value = env.get(key)
        if value is not None and value.strip() != "":
            return value.strip()
    if default is None:
        also = f" (or {', '.join(fallbacks)})" if fallbacks else ""
        raise SettingsError(f"{name}{also} is required but not set")
    return default


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return default if raw == "" else False
    raise SettingsError(f"{name} must be true or false, got {env[name]!r}")


def _positive(
    env: Mapping[str, str], name: str, default: float, kind: type[float] | type[int]
) -> float:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a positive {kind.__name__}, got {raw!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise SettingsError(f"{name} must be a positive {kind.__name__}, got {raw!r}")
    return value


def _bucket(env: Mapping[str, str], name: str, default: str) -> str:
    value = _get(env, name, default=default)
    if not (3 <= len(value) <= 63) or not all(
        c.islower() or c.isdigit() or c in "-." for c in value
    ):
        raise SettingsError(f"{name} must be a valid S3 bucket name, got {value!r}")
    return value


@dataclass(frozen=True)
class StorageSettings:
    """Where MinIO is and which buckets the API uses."""

    endpoint: str
    access_key: str
    secret_key: str
    secure: bool
    incoming_bucket: str
    processed_bucket: str
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StorageSettings:
        env = os.environ if env is None else env
        endpoint = _get(env, "MINIO_ENDPOINT", "minio_hostname")
        if "://" in endpoint or "/" in endpoint:
            raise SettingsError(
                f"MINIO_ENDPOINT must be host:port without a scheme, got {endpoint!r}"
            )
        # Without it, the client asks the endpoint for each bucket's region first.
        region = _get(env, "MINIO_REGION", default="") or None
        if region is not None and not REGION.fullmatch(region):
            raise SettingsError(
                f"MINIO_REGION must be a region name such as eu-west-1, got {region!r}"
            )
        return cls(
            endpoint=endpoint,
            access_key=_get(env, "MINIO_ACCESS_KEY", "minio_access_key"),
            secret_key=_get(env, "MINIO_SECRET_KEY", "minio_secret_key"),
            secure=_bool(env, "MINIO_SECURE", default=False),
            incoming_bucket=_bucket(env, "INCOMING_BUCKET", "incoming"),
            processed_bucket=_bucket(env, "PROCESSED_BUCKET", "processed"),
            region=region,
        )


@dataclass(frozen=True)
class FetchSettings:
    """Limits on downloading images from user-supplied URLs."""

    max_download_bytes: int
    max_image_pixels: int
    timeout_seconds: float
    allow_private_networks: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FetchSettings:
        env = os.environ if env is None else env
        return cls(
            max_download_bytes=int(_positive(env, "MAX_DOWNLOAD_BYTES", 50 * 1024 * 1024, int)),
            max_image_pixels=int(_positive(env, "MAX_IMAGE_PIXELS", 64_000_000, int)),
            timeout_seconds=_positive(env, "FETCH_TIMEOUT_SECONDS", 10.0, float),
            allow_private_networks=_bool(env, "FETCH_ALLOW_PRIVATE_NETWORKS", default=False),
        )


@dataclass(frozen=True)
class ApiSettings:
    """How long the image API waits on storage before it answers 503."""

    storage_timeout_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if env is None else env
        return cls(
            storage_timeout_seconds=_positive(env, "STORAGE_TIMEOUT_SECONDS", 10.0, float),
        )


_ABSOLUTE_HTTP_URL = re.compile(r"^https?://[^\s/?#@]+(/[^\s#]*)?$")


@dataclass(frozen=True)
class RobotsSettings:
    """What /robots.txt names: the sitemap index that lists this host's images, if any."""

    sitemap_index_url: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RobotsSettings:
        env = os.environ if env is None else env
        url = _get(env, "SITEMAP_INDEX_URL", default="") or None
        if url is not None and not _ABSOLUTE_HTTP_URL.match(url):
            raise SettingsError(f"SITEMAP_INDEX_URL must be an absolute http(s) URL, got {url!r}")
        return cls(sitemap_index_url=url)


@dataclass(frozen=True)
class ServingSettings:
    """What one pod may spend on slow clients, slow origins and conversions."""

    header_timeout_seconds: int
    body_min_bytes_per_second: int
    max_connections: int
    max_downloads: int
    memory_limit_bytes: int
    conversion_timeout_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        env = os.environ if env is None else env
        memory = int(_positive(env, "MEMORY_LIMIT_BYTES", DEFAULT_MEMORY_LIMIT_BYTES, int))
        return cls(
            header_timeout_seconds=int(_positive(env, "HEADER_TIMEOUT_SECONDS", 5, int)),
            body_min_bytes_per_second=int(_positive(env, "BODY_MIN_BYTES_PER_SECOND", 4096, int)),
            max_connections=int(_positive(env, "MAX_CONNECTIONS", 1000, int)),
            max_downloads=int(_positive(env, "MAX_DOWNLOADS", 8, int)),
            memory_limit_bytes=memory,
            conversion_timeout_seconds=_positive(env, "CONVERSION_TIMEOUT_SECONDS", 30.0, float),
        )


def web_concurrency(env: Mapping[str, str] | None = None) -> int:
    """gunicorn's worker count, from WEB_CONCURRENCY (default 2)."""
    env = os.environ if env is None else env
    raw = env.get("WEB_CONCURRENCY", "").strip() or "2"
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"WEB_CONCURRENCY must be a positive integer, got {raw!r}")
    return int(raw)


def conversion_budget(serving: ServingSettings, workers: int) -> int:
    """Bytes that conversions may hold at once in a pod: the limit less the processes' own."""
    return serving.memory_limit_bytes - MASTER_BYTES - WORKER_BYTES * workers


def _check_budget(serving: ServingSettings, workers: int) -> None:
    budget = conversion_budget(serving, workers)
    if budget < MIN_CONVERSION_BUDGET_BYTES:
        needed = (MASTER_BYTES + WORKER_BYTES * workers + MIN_CONVERSION_BUDGET_BYTES) // MIB
        raise SettingsError(
            f"MEMORY_LIMIT_BYTES={serving.memory_limit_bytes} is too small for "
            f"WEB_CONCURRENCY={workers} workers: give at least {needed} MiB"
        )


def check_all(env: Mapping[str, str] | None = None) -> None:
    """Raise SettingsError for the first setting of the image API that is missing or invalid."""
    StorageSettings.from_env(env)
    FetchSettings.from_env(env)
    ApiSettings.from_env(env)
    RobotsSettings.from_env(env)
    _check_budget(ServingSettings.from_env(env), web_concurrency(env))
