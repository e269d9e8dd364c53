"""Settings from the environment: defaults, legacy fallbacks and one clear error per bad value."""

from __future__ import annotations

import pytest

from service.settings import (
    FetchSettings,
    MinioServerSettings,
    ServingSettings,
    SettingsError,
    StorageSettings,
    check_all,
    conversion_budget,
)

BASE = {"MINIO_ENDPOINT": "minio:9000", "MINIO_ACCESS_KEY": "user", "MINIO_SECRET_KEY": "secret"}


def test_storage_defaults() -> None:
    settings = StorageSettings.from_env(BASE)
    assert settings.endpoint == "minio:9000"
    assert settings.secure is False
    assert (settings.incoming_bucket, settings.processed_bucket) == ("incoming", "processed")


def test_legacy_lowercase_names_are_fallbacks() -> None:
    env = {"minio_hostname": "old:9000", "minio_access_key": "a", "minio_secret_key": "b"}
    settings = StorageSettings.from_env(env)
    assert (settings.endpoint, settings.access_key, settings.secret_key) == ("old:9000", "a", "b")


def test_new_names_win_over_legacy_ones() -> None:
    settings = StorageSettings.from_env({**BASE, "minio_hostname": "old:9000"})
    assert settings.endpoint == "minio:9000"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "MINIO_ENDPOINT (or minio_hostname) is required"),
        ({**BASE, "MINIO_ENDPOINT": "http://minio:9000"}, "MINIO_ENDPOINT must be host:port"),
        ({**BASE, "MINIO_SECRET_KEY": "  "}, "MINIO_SECRET_KEY (or minio_secret_key) is required"),
        ({**BASE, "MINIO_SECURE": "maybe"}, "MINIO_SECURE must be true or false"),
        ({**BASE, "MINIO_REGION": "EU West"}, "MINIO_REGION must be a region name"),
        ({**BASE, "INCOMING_BUCKET": "Bad_Bucket"}, "INCOMING_BUCKET must be a valid S3 bucket"),
        ({**BASE, "PROCESSED_BUCKET": "ab"}, "PROCESSED_BUCKET must be a valid S3 bucket"),
        ({**BASE, "PROCESSED_BUCKET": "-images"}, "PROCESSED_BUCKET must be a valid S3 bucket"),
        ({**BASE, "PROCESSED_BUCKET": "my..images"}, "PROCESSED_BUCKET must be a valid S3 bucket"),
        ({**BASE, "PROCESSED_BUCKET": "192.168.5.4"}, "PROCESSED_BUCKET must be a valid S3 bucket"),
        ({**BASE, "PROCESSED_BUCKET": "xn--images"}, "PROCESSED_BUCKET must be a valid S3 bucket"),
        ({**BASE, "WEB_CONCURRENCY": "65"}, "WEB_CONCURRENCY must be an integer from 1 to 64"),
    ],
)
def test_storage_errors_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_all(env)


def test_a_secret_is_never_repeated_in_its_error() -> None:
    with pytest.raises(SettingsError) as raised:
        MinioServerSettings.from_env({"MINIO_ROOT_USER": "root", "MINIO_ROOT_PASSWORD": "hunter2"})
    assert str(raised.value) == "MINIO_ROOT_PASSWORD must be a string of at least 8 characters"


def test_region_is_optional_and_read_when_set() -> None:
    assert StorageSettings.from_env(BASE).region is None
    assert StorageSettings.from_env({**BASE, "MINIO_REGION": "eu-west-1"}).region == "eu-west-1"


def test_fetch_defaults() -> None:
    settings = FetchSettings.from_env({})
    assert settings.allow_private_networks is False
    assert settings.max_download_bytes > 0
    assert settings.timeout_seconds > 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MAX_DOWNLOAD_BYTES": "-1"},
            'MAX_DOWNLOAD_BYTES must be an integer of 1 or more, got "-1"',
        ),
        ({"MAX_DOWNLOAD_BYTES": "10MB"}, "MAX_DOWNLOAD_BYTES must be an integer of 1 or more"),
        ({"MAX_IMAGE_PIXELS": "0"}, "MAX_IMAGE_PIXELS must be an integer of 1 or more"),
        ({"FETCH_TIMEOUT_SECONDS": "soon"}, "FETCH_TIMEOUT_SECONDS must be a number above 0"),
        ({"FETCH_TIMEOUT_SECONDS": "nan"}, "FETCH_TIMEOUT_SECONDS must be a number above 0"),
        ({"FETCH_TIMEOUT_SECONDS": "inf"}, "FETCH_TIMEOUT_SECONDS must be a number above 0"),
        (
            {"FETCH_ALLOW_PRIVATE_NETWORKS": "2"},
            "FETCH_ALLOW_PRIVATE_NETWORKS must be true or false",
        ),
    ],
)
def test_fetch_errors_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        FetchSettings.from_env(env)


def test_serving_defaults() -> None:
    settings = ServingSettings.from_env({})
    assert settings.header_timeout_seconds == 5
    assert settings.memory_limit_bytes == 512 * 1024 * 1024
    assert settings.max_downloads == 8
    # The dev stack's 512 Mi with its 2 workers leaves conversions a useful budget.
    assert conversion_budget(settings, 2) >= 200 * 1024 * 1024


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HEADER_TIMEOUT_SECONDS": "2.5"}, "HEADER_TIMEOUT_SECONDS must be an integer of 1"),
        ({"BODY_MIN_BYTES_PER_SECOND": "0"}, "BODY_MIN_BYTES_PER_SECOND must be an integer of"),
        ({"MAX_CONNECTIONS": "lots"}, "MAX_CONNECTIONS must be an integer of 1 or more"),
        ({"MAX_DOWNLOADS": "-2"}, "MAX_DOWNLOADS must be an integer of 1 or more"),
        ({"MEMORY_LIMIT_BYTES": "512Mi"}, "MEMORY_LIMIT_BYTES must be an integer of 1 or more"),
        (
            {"CONVERSION_TIMEOUT_SECONDS": "inf"},
            "CONVERSION_TIMEOUT_SECONDS must be a number above 0",
        ),
        (
            {"MEMORY_LIMIT_BYTES": str(256 * 1024 * 1024), "WEB_CONCURRENCY": "2"},
            "MEMORY_LIMIT_BYTES=268435456 is too small for WEB_CONCURRENCY=2 workers",
        ),
    ],
)
def test_serving_errors_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        check_all({**BASE, **env})
