"""The largest image of each kind that a pod converts, which limit binds first, and the
OpenAPI document that states them for the running settings."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import Api, api_env, serve

from service import limits
from service.limits import (
    BYTES_PER_PIXEL,
    DOWNLOAD_LIMIT,
    MEMORY_LIMIT,
    PHOTO_FILE_BYTES_PER_PIXEL,
    PIXEL_LIMIT,
    largest_images,
)
from service.openapi import document
from service.settings import FetchSettings, ServingSettings, conversion_budget

MIB = 1024 * 1024
# The dev stack's values are the settings' defaults: Pulumi.dev.yaml gives the API the same
# 512Mi memory limit and leaves the worker count and both caps at their defaults.
_FETCH = FetchSettings.from_env({})
_SERVING = ServingSettings.from_env({})
DEV = {
    "memory_limit_bytes": _SERVING.memory_limit_bytes,
    "workers": _SERVING.web_concurrency,
    "max_image_pixels": _FETCH.max_image_pixels,
    "max_download_bytes": _FETCH.max_download_bytes,
}


def _by_kind(**settings: int) -> dict[str, limits.Largest]:
    return {item.kind: item for item in largest_images(**settings)}


def test_the_dev_stack_converts_a_12_mp_image_of_every_kind_but_lossless_webp() -> None:
    assert DEV == {
        "memory_limit_bytes": 512 * MIB,
        "workers": 2,
        "max_image_pixels": 50_000_000,
        "max_download_bytes": 20 * MIB,
    }, "the figures below are the dev stack's"
    found = _by_kind(**DEV)
    assert set(found) == set(PHOTO_FILE_BYTES_PER_PIXEL)
    assert found["JPEG"] == limits.Largest("JPEG", 50_000_000, PIXEL_LIMIT)
    # A photo PNG of 1.7 bytes per pixel: 20 MiB of it is about 12 MP.
    assert found["PNG"].binding == DOWNLOAD_LIMIT
    assert found["PNG"].pixels == int(20 * MIB / PHOTO_FILE_BYTES_PER_PIXEL["PNG"])
    assert found["WEBP"].binding == MEMORY_LIMIT
    assert found["WEBP"].pixels >= 12_000_000
    assert found["WEBP lossless"].binding == MEMORY_LIMIT
    for item in found.values():
        assert item.pixels >= 12_000_000 or item.kind == "WEBP lossless", item


def test_a_png_at_the_pixel_cap_fits_the_dev_budget_whatever_its_file() -> None:
    """The download cap bounds the file: a 50 MP PNG of 20 MiB still converts in 512 Mi."""
    budget = conversion_budget(ServingSettings.from_env({}), DEV["workers"])
    assert 50_000_000 * BYTES_PER_PIXEL["PNG"] + 20 * MIB <= budget


def test_each_limit_binds_in_turn() -> None:
    roomy = _by_kind(
        memory_limit_bytes=64 * 1024 * MIB,
        workers=1,
        max_image_pixels=1_000_000,
        max_download_bytes=1024 * MIB,
    )
    assert {item.binding for item in roomy.values()} == {PIXEL_LIMIT}
    assert {item.pixels for item in roomy.values()} == {1_000_000}
    small_files = _by_kind(
        **{**DEV, "memory_limit_bytes": 64 * 1024 * MIB, "max_download_bytes": MIB}
    )
    assert {item.binding for item in small_files.values()} == {DOWNLOAD_LIMIT}
    # 16 MiB for conversions: the smallest budget the settings allow.
    tight = _by_kind(**{**DEV, "memory_limit_bytes": (48 + 2 * 112 + 16) * MIB})
    assert {item.binding for item in tight.values()} == {MEMORY_LIMIT}
    assert tight["JPEG"].pixels == int(16 * MIB / (2 + PHOTO_FILE_BYTES_PER_PIXEL["JPEG"]))


def test_no_budget_at_all_converts_nothing() -> None:
    for item in largest_images(128 * MIB, 2, 50_000_000, 20 * MIB):
        assert item == limits.Largest(item.kind, 0, MEMORY_LIMIT)


def test_the_memory_to_convert_an_everyday_image_is_the_least_that_does() -> None:
    """The figure the preview warning gives: one MiB less would not convert the image."""
    for kind in limits.PHOTO_FILE_BYTES_PER_PIXEL:
        for workers in (1, 2, 4):
            mib = limits.memory_to_convert(kind, limits.EVERYDAY_PIXELS, workers)
            unbounded = {"max_image_pixels": limits.EVERYDAY_PIXELS, "max_download_bytes": 1 << 62}
            enough = _by_kind(memory_limit_bytes=mib * MIB, workers=workers, **unbounded)
            short = _by_kind(memory_limit_bytes=(mib - 1) * MIB, workers=workers, **unbounded)
            assert enough[kind].pixels == limits.EVERYDAY_PIXELS
            assert short[kind].pixels < limits.EVERYDAY_PIXELS
    # The dev stack's 512Mi pods convert lossless WebPs of 8 MP; 12 MP needs 631 MiB.
    assert limits.memory_to_convert("WEBP lossless", limits.EVERYDAY_PIXELS, 2) == 631


@pytest.fixture
def dev_api(s3_server: Any) -> Iterator[Api]:
    yield from serve(
        api_env(
            s3_server.env(),
            MEMORY_LIMIT_BYTES=str(DEV["memory_limit_bytes"]),
            WEB_CONCURRENCY=str(DEV["workers"]),
            MAX_IMAGE_PIXELS=str(DEV["max_image_pixels"]),
            MAX_DOWNLOAD_BYTES=str(DEV["max_download_bytes"]),
        )
    )


def test_openapi_states_the_running_pods_limits_and_is_otherwise_the_committed_document(
    dev_api: Api,
) -> None:
    served = dev_api.get("/openapi.json").json()
    committed = copy.deepcopy(document())
    stated = served["paths"]["/incoming"]["post"].pop("description")
    committed_description = committed["paths"]["/incoming"]["post"].pop("description")
    assert served == committed
    stated_limits = limits.describe_limits(largest_images(**DEV))
    assert stated == f"{committed_description} {stated_limits}"
    assert "JPEG 50.0 MP (MAX_IMAGE_PIXELS binds first)" in stated
    assert "PNG 12.3 MP (MAX_DOWNLOAD_BYTES binds first)" in stated
    assert "lossless WebP 8.0 MP (MEMORY_LIMIT_BYTES binds first)" in stated
