"""Big images: the pod's memory limit holds, memory is returned, and conversions have a deadline."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, OriginServer, api_env, error_of, photo, serve

from bench.largest import KINDS, largest_admitted
from service.settings import FetchSettings, ServingSettings, conversion_budget
from tests.servers import serving
from tests.service.serving_support import PeakSampler, rss_now, rss_peak, served

MIB = 1024 * 1024
# The dev stack's values are the settings' defaults: Pulumi.dev.yaml gives the API the same
# 512Mi memory limit and leaves the worker count and both caps at their defaults.
DEV_LIMIT = ServingSettings.from_env({}).memory_limit_bytes
DEV_WORKERS = ServingSettings.from_env({}).web_concurrency
DEV_MAX_PIXELS = FetchSettings.from_env({}).max_image_pixels
DEV_MAX_DOWNLOAD = FetchSettings.from_env({}).max_download_bytes
DEV_BUDGET = conversion_budget(
    ServingSettings.from_env({"MEMORY_LIMIT_BYTES": str(DEV_LIMIT)}), DEV_WORKERS
)


@pytest.fixture(scope="module")
def largest() -> dict[str, bytes]:
    """Two distinct images of each kind, each the largest the dev stack admits."""
    return {
        f"{kind.replace(' ', '_')}-{seed}": largest_admitted(
            kind, DEV_BUDGET, DEV_MAX_PIXELS, DEV_MAX_DOWNLOAD, seed
        )
        for kind in KINDS
        for seed in (0, 1)
    }


@pytest.fixture(scope="module")
def big_origin(largest: dict[str, bytes]) -> Iterator[OriginServer]:
    with serving(OriginServer(largest)) as origin:
        yield origin


def test_the_largest_image_of_each_kind_converts_within_the_dev_memory_limit(
    s3_server: Any, tmp_path: Path, big_origin: OriginServer, largest: dict[str, bytes]
) -> None:
    """The resident memory of master and workers, summed and sampled, stays under 512 Mi.

    For each kind, two of the largest images the dev stack admits are converted at once:
    the budget lets one wait for the other (or answer 503), never both run past the limit.
    No worker's own peak goes past its idle size plus the whole budget, and afterwards each
    gives the memory back.
    """
    env = {
        **s3_server.env(),
        "FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        "WEB_CONCURRENCY": str(DEV_WORKERS),
        "MEMORY_LIMIT_BYTES": str(DEV_LIMIT),
        "MAX_IMAGE_PIXELS": str(DEV_MAX_PIXELS),
        "MAX_DOWNLOAD_BYTES": str(DEV_MAX_DOWNLOAD),
    }
    with served(env, tmp_path) as api:
        paths: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for name in largest:
            answer = api.request("POST", "/incoming", json={"url": big_origin.url(name)})
            assert answer.status == 201, (name, answer.data)
            paths[name.rsplit("-", 1)[0].replace("_", " ")].append(answer.json()["path"])
        resting = {pid: rss_now(pid) for pid in api.workers()}

        statuses: dict[str, list[int]] = {kind: [] for kind in KINDS}

        def convert(kind: str, path: str) -> None:
            answer = api.request("POST", "/processed", json={"path": path})
            statuses[kind].append(answer.status)
            if answer.status != 201:
                assert answer.status == 503, answer.data
                assert answer.headers["Retry-After"]

        with PeakSampler([api.process.pid, *api.workers()]) as sampled:
            for kind in KINDS:
                threads = [
                    threading.Thread(target=convert, args=(kind, path)) for path in paths[kind]
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=120)
        for kind in KINDS:
            assert 201 in statuses[kind], (kind, statuses[kind])

        assert sampled.peak < DEV_LIMIT, f"peak {sampled.peak / MIB:.0f} MiB over the limit"
        for pid, before in resting.items():
            assert rss_peak(pid) < before + DEV_BUDGET, f"worker {pid} went past the budget"
        for pid, before in resting.items():
            after = rss_now(pid)
            assert after < before + 64 * MIB, f"worker kept {(after - before) / MIB:.0f} MiB"


@pytest.fixture
def tight_api(s3_server: Any) -> Iterator[Api]:
    """One worker and 20 MiB for conversions."""
    limit = (48 + 112 + 20) * MIB
    yield from serve(api_env(s3_server.env(), WEB_CONCURRENCY="1", MEMORY_LIMIT_BYTES=str(limit)))


def test_an_image_over_the_pods_conversion_budget_is_refused_at_upload(
    tight_api: Api, origin: OriginServer
) -> None:
    """Nothing is accepted that this pod could never convert."""
    answer = tight_api.post("/incoming", {"url": origin.url("big.png")})
    assert answer.status == 422
    assert "more than the 20 MiB this pod has for conversions" in error_of(answer)
    # Small images still go in and convert.
    assert tight_api.process(tight_api.upload(origin.url("photo.png"))).startswith("/processed/")


@pytest.fixture
def tiny_api(s3_server: Any) -> Iterator[Api]:
    """One worker and 4 MiB for conversions."""
    limit = (48 + 112 + 4) * MIB
    yield from serve(api_env(s3_server.env(), WEB_CONCURRENCY="1", MEMORY_LIMIT_BYTES=str(limit)))


def test_a_jpeg_is_costed_at_full_size_though_its_check_decodes_it_scaled_down(
    tiny_api: Api,
) -> None:
    """The upload's check reads a JPEG at 1/8 scale; the cost must come from its real size."""
    out = io.BytesIO()
    photo(1600, 1200).save(out, "JPEG", quality=90)  # about 7.4 MiB to convert
    with serving(OriginServer({"wide.jpg": out.getvalue()})) as origin:
        answer = tiny_api.post("/incoming", {"url": origin.url("wide.jpg")})
    assert answer.status == 422
    assert "more than the 4 MiB this pod has for conversions" in error_of(answer)


def test_one_stored_by_a_roomier_pod_gets_422_at_conversion(
    tight_api: Api, api: Api, origin: OriginServer
) -> None:
    """A pod with a larger budget (the default) stored it, on the same storage."""
    path = api.upload(origin.url("big.png"))
    answer = tight_api.post("/processed", {"path": path})
    assert answer.status == 422
    assert "more than the 20 MiB this pod has for conversions" in error_of(answer)


@pytest.fixture
def impatient_api(s3_server: Any) -> Iterator[Api]:
    yield from serve(api_env(s3_server.env(), CONVERSION_TIMEOUT_SECONDS="0.001"))


def test_a_conversion_past_its_deadline_gets_503(impatient_api: Api, origin: OriginServer) -> None:
    path = impatient_api.upload(origin.url("big.png"))
    answer = impatient_api.post("/processed", {"path": path})
    assert answer.status == 503
    assert answer.headers["Retry-After"]
    assert "did not finish within 0.001 seconds" in error_of(answer)
    assert impatient_api.get("/healthz").status == 200
