"""Big images: the pod's memory limit holds, memory is returned, and conversions have a deadline."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, OriginServer, api_env, error_of, photo, serve

from service.admission import conversion_cost
from service.settings import ServingSettings, conversion_budget
from tests.servers import serving
from tests.service.serving_support import PeakSampler, rss_now, rss_peak, served

MIB = 1024 * 1024
DEV_LIMIT = 512 * MIB  # the dev stack's memory limit (Pulumi.dev.yaml)
DEV_WORKERS = 2
DEFAULT_MAX_PIXELS = 64_000_000


def largest_png(budget: int, seed: int) -> bytes:
    """A photo-like PNG as large as the conversion budget admits, within 3 %.

    A PNG costs 16 bytes per pixel plus its file's size. A try at a quarter of the side gives
    the cost per pixel to size the image by (0.2 % under); a try still over the budget sizes
    the next one the same way, or shrinks the side by 1.5 % if that is less.
    """
    side = int((budget / 16) ** 0.5)
    sample = side // 4
    _data, cost = _png(sample, seed)
    side = int((budget * sample**2 / cost) ** 0.5 * 0.998)
    while True:
        data, cost = _png(side, seed)
        if cost <= budget:
            assert cost >= 0.97 * budget
            return data
        side = min(int(side * 0.985), int((budget * side**2 / cost) ** 0.5 * 0.998))


def _png(side: int, seed: int) -> tuple[bytes, int]:
    """A square photo-like PNG and its conversion cost."""
    out = io.BytesIO()
    photo(side, side).rotate(seed).save(out, "PNG", compress_level=1)
    cost = conversion_cost(out, DEFAULT_MAX_PIXELS)
    assert cost is not None
    return out.getvalue(), cost


@pytest.fixture(scope="module")
def big_pngs() -> dict[str, bytes]:
    budget = conversion_budget(ServingSettings.from_env({}), DEV_WORKERS)
    return {f"big{seed}.png": largest_png(budget, seed) for seed in (0, 90)}


@pytest.fixture(scope="module")
def big_origin(big_pngs: dict[str, bytes]) -> Iterator[OriginServer]:
    with serving(OriginServer(big_pngs)) as origin:
        yield origin


def test_the_largest_png_converts_within_the_dev_memory_limit(
    s3_server: Any, tmp_path: Path, big_origin: OriginServer, big_pngs: dict[str, bytes]
) -> None:
    """The resident memory of master and workers, summed and sampled, stays under 512 Mi.

    Two of the largest images are converted at once: the budget lets one wait for the other
    (or answer 503), never both run past the limit. No worker's own peak goes past its idle
    size plus the whole budget, and afterwards each gives the memory back.
    """
    env = {
        **s3_server.env(),
        "FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        "WEB_CONCURRENCY": str(DEV_WORKERS),
        "MEMORY_LIMIT_BYTES": str(DEV_LIMIT),
        "MAX_DOWNLOAD_BYTES": str(200 * MIB),
    }
    with served(env, tmp_path) as api:
        paths = []
        for name in big_pngs:
            answer = api.request("POST", "/incoming", json={"url": big_origin.url(name)})
            assert answer.status == 201, answer.data
            paths.append(answer.json()["path"])
        resting = {pid: rss_now(pid) for pid in api.workers()}

        statuses: list[int] = []

        def convert(path: str) -> None:
            answer = api.request("POST", "/processed", json={"path": path})
            statuses.append(answer.status)
            if answer.status != 201:
                assert answer.status == 503, answer.data
                assert answer.headers["Retry-After"]

        threads = [threading.Thread(target=convert, args=(path,)) for path in paths]
        with PeakSampler([api.process.pid, *api.workers()]) as sampled:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
        assert 201 in statuses

        assert sampled.peak < DEV_LIMIT, f"peak {sampled.peak / MIB:.0f} MiB over the limit"
        budget = conversion_budget(ServingSettings.from_env({}), DEV_WORKERS)
        for pid, before in resting.items():
            assert rss_peak(pid) < before + budget, f"worker {pid} went past the budget"
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
