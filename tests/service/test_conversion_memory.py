"""A conversion done before is answered without converting again, and nothing of that memory
shows where other parts look for images: the processed bucket holds greyscale images only."""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import Api, OriginServer, api_env, serve

from service import images
from service import storage as storage_module
from service.conversions import ConversionMemo, table_path
from service.settings import StorageSettings
from service.storage import Storage
from tests.servers import free_port

NAME = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def other_worker(s3_server) -> Iterator[Api]:
    """A second app on the same storage, as another gunicorn worker of the pod: it maps the
    same memo file, and shares nothing else with the first."""
    yield from serve(api_env(s3_server.env()))


def _conversions(api: Api) -> float:
    # One metrics registry per test process: every app in it counts here.
    metrics = api.get("/metrics").data.decode()
    found = re.findall(r"^image_conversion_seconds_count\{[^}]*\} (\S+)$", metrics, re.M)
    return sum(float(value) for value in found)


def _forget_everything(s3_server) -> None:
    """Empty the pod's memo, as after a restart or on another replica."""
    path = table_path(f"{s3_server.endpoint}/incoming/processed")
    with path.open("r+b") as table:
        table.write(bytes(path.stat().st_size))


def test_processed_bucket_holds_only_images_named_by_their_sha256(
    api: Api, origin: OriginServer, s3_server
):
    for name in ("photo.jpg", "photo.png", "large.jpg"):
        source = api.upload(origin.url(name))
        api.process(source)
        api.process(source)
    client = s3_server.client()
    listed = [
        str(item.object_name)
        for item in client.list_objects(bucket_name="processed", recursive=True)
    ]
    assert listed
    assert all(NAME.fullmatch(name) for name in listed), listed


def test_a_repeat_in_another_worker_converts_nothing(
    api: Api, other_worker: Api, origin: OriginServer
):
    source = api.upload(origin.url("photo.gif"))
    first = api.process(source)
    before = _conversions(api)
    assert other_worker.process(source) == first
    assert _conversions(api) == before


def test_a_large_conversion_is_remembered_in_storage(api: Api, origin: OriginServer, s3_server):
    """After a restart (the memo empty), the tag of the original, written off the request
    path, still names the result."""
    source = api.upload(origin.url("large.jpg"))
    first = api.process(source)
    name = source.rsplit("/", 1)[1]
    client = s3_server.client()
    deadline = time.monotonic() + 10
    while (tags := client.get_object_tags(bucket_name="incoming", object_name=name)) is None:
        assert time.monotonic() < deadline, "the tag was not written within 10 s"
        time.sleep(0.05)
    assert dict(tags) == {images.RESULT_TAG: first.rsplit("/", 1)[1]}

    _forget_everything(s3_server)
    before = _conversions(api)
    assert api.process(source) == first
    assert _conversions(api) == before
    assert api.process(source) == first  # now from the memo again


def test_small_conversions_write_nothing_else_to_storage(api: Api, origin: OriginServer, s3_server):
    source = api.upload(origin.url("photo.webp"))
    api.process(source)
    time.sleep(0.2)  # a write off the request path would have landed by now
    assert (
        s3_server.client().get_object_tags(
            bucket_name="incoming", object_name=source.rsplit("/", 1)[1]
        )
        is None
    )


def test_a_remembered_result_that_is_gone_is_converted_again(
    api: Api, origin: OriginServer, s3_server
):
    source = api.upload(origin.url("palette.png"))
    result = api.process(source)
    s3_server.client().remove_object(bucket_name="processed", object_name=result.rsplit("/", 1)[1])
    assert api.get(result).status == 404
    assert api.process(source) == result
    assert api.get(result).status == 200


def test_old_source_markers_are_no_longer_read(api: Api, origin: OriginServer, s3_server):
    """Deployments before this change kept `sources/<name>` markers in the processed bucket.
    They are neither read nor written any more: the image converts again, to the same name."""
    source = api.upload(origin.url("alpha.png"))
    marker = f"sources/{source.rsplit('/', 1)[1]}"
    s3_server.client().put_object(
        bucket_name="processed",
        object_name=marker,
        data=io.BytesIO(b""),
        length=0,
        metadata={"processed": "0" * 64},
    )
    result = api.process(source)
    assert result != "/processed/" + "0" * 64
    assert api.get(result).status == 200


@pytest.fixture
def own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_memo_is_shared_and_bounded(own_tmp: Path):
    memo = ConversionMemo("scope", slots=1)
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    assert memo.get(a) is None
    memo.put(a, b)
    assert memo.get(a) == b
    assert ConversionMemo("scope", slots=1).get(a) == b  # another worker sees it
    assert ConversionMemo("other scope", slots=1).get(a) is None
    memo.put(c, b)
    assert memo.get(a) is None  # the one slot went to the newer entry
    assert memo.get(c) == b


def test_a_torn_entry_reads_as_a_miss(own_tmp: Path):
    memo = ConversionMemo("scope", slots=1)
    memo.put("a" * 64, "b" * 64)
    with memo.path.open("r+b") as table:
        table.seek(40)
        table.write(b"\x00")
    assert memo.get("a" * 64) is None


def test_no_usable_directory_leaves_a_memo_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_bytes(b"")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_directory))
    memo = ConversionMemo("scope", slots=4)
    memo.put("a" * 64, "b" * 64)
    assert memo.get("a" * 64) == "b" * 64


def test_memo_keeps_every_entry_of_a_bench_sized_run(own_tmp: Path):
    """Four slots per set: 3,000 conversions in the default table all stay remembered."""
    memo = ConversionMemo("scope")
    names = [hashlib.sha256(str(number).encode()).hexdigest() for number in range(3000)]
    for name in names:
        memo.put(name, name)
    assert all(memo.get(name) == name for name in names)


def test_a_tag_storage_refuses_costs_the_request_nothing(monkeypatch: pytest.MonkeyPatch):
    """Nothing listens on the port: the write off the request path fails there, and says so."""
    warnings: list[str] = []
    monkeypatch.setattr(
        storage_module.log, "warning", lambda message, *args: warnings.append(message % args)
    )
    settings = StorageSettings(
        endpoint=f"127.0.0.1:{free_port()}",
        access_key="key",
        secret_key="secret-key",
        secure=False,
        incoming_bucket="incoming",
        processed_bucket="processed",
    )
    storage = Storage(settings, timeout_seconds=1)
    started = time.monotonic()
    storage.tag_later("incoming", "a" * 64, images.RESULT_TAG, "b" * 64)
    assert time.monotonic() - started < 0.5  # the caller never waits for it
    storage._background.shutdown(wait=True)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"could not tag incoming/{'a' * 64}")
