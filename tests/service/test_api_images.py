"""Downloading, converting and reading back images over real HTTP, with S3 and an origin."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading

import pytest
from api_support import BIG_BYTES, Api, OriginServer, error_of, sha256
from PIL import Image, ImageChops

from tests.servers import free_port

CONVERTIBLE = {
    "photo.jpg": ("image/jpeg", "JPEG", "L"),
    "cmyk.jpg": ("image/jpeg", "JPEG", "L"),
    "photo.png": ("image/png", "PNG", "L"),
    "palette.png": ("image/png", "PNG", "P"),
    "alpha.png": ("image/png", "PNG", "LA"),
    "grey16.png": ("image/png", "PNG", "I;16"),
    "photo.gif": ("image/gif", "GIF", "P"),
    "animated.gif": ("image/gif", "GIF", "P"),
    "photo.webp": ("image/webp", "WEBP", "RGB"),
    "lossless.webp": ("image/webp", "WEBP", "RGB"),
}


def is_grey(image: Image.Image, within: int = 0) -> bool:
    """Every frame's channels equal, or within `within` of each other."""
    for frame in range(getattr(image, "n_frames", 1)):
        image.seek(frame)
        red, green, blue = image.convert("RGB").split()
        for one, other in ((red, green), (green, blue)):
            largest = ImageChops.difference(one, other).getextrema()[1]
            assert isinstance(largest, int)
            if largest > within:
                return False
    return True


@pytest.mark.parametrize("name", sorted(CONVERTIBLE))
def test_upload_convert_and_read_back(api: Api, origin: OriginServer, images: dict, name: str):
    content_type, fmt, mode = CONVERTIBLE[name]
    response = api.post("/incoming", {"url": origin.url(name)})
    assert response.status == 201
    path = response.json()["path"]
    assert path == f"/incoming/{sha256(images[name])}"
    assert response.headers["Location"] == path

    original = api.get(path)
    assert original.status == 200
    assert original.data == images[name]
    assert original.headers["Content-Type"] == content_type  # from the bytes, not the origin

    processed = api.post("/processed", {"path": path})
    assert processed.status == 201
    result = processed.json()["path"]
    assert re.fullmatch(r"/processed/[0-9a-f]{64}", result)
    assert processed.headers["Location"] == result

    grey = api.get(result)
    assert grey.status == 200
    assert grey.headers["Content-Type"] == content_type
    assert result == f"/processed/{sha256(grey.data)}"
    image = Image.open(io.BytesIO(grey.data))
    assert image.format == fmt
    assert image.mode == mode
    before = Image.open(io.BytesIO(images[name]))
    assert image.size == before.size
    assert getattr(image, "n_frames", 1) == getattr(before, "n_frames", 1)
    # A lossy WebP stays lossy: libwebp decodes some grey levels as R = B = G + 1.
    assert is_grey(image, within=1 if name == "photo.webp" else 0)


def test_greyscale_keeps_16_bits_and_transparency(api: Api, origin: OriginServer, images: dict):
    grey16 = Image.open(io.BytesIO(api.get(api.process(api.upload(origin.url("grey16.png")))).data))
    _, brightest = grey16.getextrema()
    assert isinstance(brightest, int)
    assert brightest > 255  # not clipped to 8 bits
    alpha = Image.open(io.BytesIO(api.get(api.process(api.upload(origin.url("alpha.png")))).data))
    assert (
        alpha.getchannel("A").tobytes()
        == Image.open(io.BytesIO(images["alpha.png"])).getchannel("A").tobytes()
    )


def test_conversion_is_deterministic_and_done_once(api: Api, origin: OriginServer):
    source = api.upload(origin.url("photo.png"))
    first = api.process(source)
    before = _conversions(api)
    assert api.process(source) == first
    assert api.process(source) == first
    assert _conversions(api) == before  # served from the stored result, not converted again


def test_same_bytes_from_two_urls_store_one_object(
    api: Api, origin: OriginServer, s3_server, images: dict
):
    first = api.upload(origin.url("photo.gif"))
    second = api.upload(origin.url("photo.gif?again=1"))
    assert first == second
    assert _object_count(s3_server, "incoming", sha256(images["photo.gif"])) == 1


def test_concurrent_identical_uploads_store_one_object(
    api: Api, origin: OriginServer, s3_server, images: dict
):
    results: list[tuple[int, str]] = []

    def upload() -> None:
        response = api.post("/incoming", {"url": origin.url("photo.webp")})
        results.append((response.status, response.json()["path"]))

    threads = [threading.Thread(target=upload) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    name = sha256(images["photo.webp"])
    assert results == [(201, f"/incoming/{name}")] * 8
    assert _object_count(s3_server, "incoming", name) == 1

    processed: list[str] = []
    threads = [
        threading.Thread(target=lambda: processed.append(api.process(f"/incoming/{name}")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(processed)) == 1
    assert len(processed) == 8


def test_big_download_streams_back_identical(api: Api, origin: OriginServer, images: dict):
    path = api.upload(origin.url("big.png"))
    response = api.get(path, preload_content=False)
    assert response.status == 200
    assert int(response.headers["Content-Length"]) == len(images["big.png"]) > BIG_BYTES
    digest = hashlib.sha256()
    for chunk in response.stream(1024 * 1024):
        digest.update(chunk)
    response.release_conn()
    assert f"/incoming/{digest.hexdigest()}" == path


def test_get_is_cacheable_and_honours_if_none_match(api: Api, origin: OriginServer):
    path = api.upload(origin.url("photo.jpg"))
    name = path.rsplit("/", 1)[1]
    response = api.get(path)
    assert response.headers["ETag"] == f'"{name}"'
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    for tag in (f'"{name}"', f'W/"{name}"', f'"other", "{name}"', "*"):
        again = api.get(path, headers={"If-None-Match": tag})
        assert again.status == 304
        assert again.data == b""
        assert again.headers["ETag"] == f'"{name}"'
    assert api.get(path, headers={"If-None-Match": '"other"'}).status == 200
    missing = "/incoming/" + "0" * 64
    assert api.get(missing, headers={"If-None-Match": f'"{"0" * 64}"'}).status == 404


def test_head_answers_headers_only(api: Api, origin: OriginServer, images: dict):
    path = api.upload(origin.url("photo.jpg"))
    for _ in range(20):  # each HEAD must give its storage connection back
        response = api.request("HEAD", path)
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(images["photo.jpg"]))
    assert api.get(path).data == images["photo.jpg"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("page.html", "text/html"),
        ("empty.png", "not a supported image"),
        ("bomb.png", "MAX_IMAGE_PIXELS"),
    ],
)
def test_non_images_are_refused_before_storing(
    api: Api, origin: OriginServer, s3_server, images: dict, name: str, needle: str
):
    response = api.post("/incoming", {"url": origin.url(name)})
    assert response.status == 422
    assert needle in error_of(response)
    assert _object_count(s3_server, "incoming", sha256(images[name])) == 0


@pytest.mark.parametrize("name", ["truncated.jpg", "truncated.png", "truncated.gif"])
def test_truncated_download_is_refused_before_storing(
    api: Api, origin: OriginServer, s3_server, images: dict, name: str
):
    response = api.post("/incoming", {"url": origin.url(name)})
    assert response.status == 422
    assert "truncated" in error_of(response)
    assert _object_count(s3_server, "incoming", sha256(images[name])) == 0


def test_large_truncated_png_is_refused_without_a_full_decode(
    api: Api, origin: OriginServer, images: dict
):
    """Over FULL_CHECK_PIXELS the chunk checksums are checked instead of a full decode."""
    response = api.post("/incoming", {"url": origin.url("big-truncated.png")})
    assert response.status == 422
    assert "could not be decoded" in error_of(response)


def test_truncated_original_stored_earlier_is_422_on_conversion(api: Api, s3_server, images: dict):
    """Deployments before the check at the door may hold such originals."""

    data = images["truncated.jpg"]
    client = s3_server.client()
    client.put_object(
        bucket_name="incoming",
        object_name=sha256(data),
        data=io.BytesIO(data),
        length=len(data),
        content_type="image/jpeg",
    )
    response = api.post("/processed", {"path": f"/incoming/{sha256(data)}"})
    assert response.status == 422
    assert "truncated" in error_of(response)


def test_download_over_the_limit_is_413(api: Api, origin: OriginServer):
    response = api.post("/incoming", {"url": origin.url("endless")})
    assert response.status == 413
    assert "limit" in error_of(response)


@pytest.mark.parametrize("name", ["error", "missing.png"])
def test_origin_failure_is_502(api: Api, origin: OriginServer, name: str):
    response = api.post("/incoming", {"url": origin.url(name)})
    assert response.status == 502
    assert "status" in error_of(response)


def test_origin_refusing_connections_is_502(api: Api):
    response = api.post("/incoming", {"url": f"http://127.0.0.1:{free_port()}/x.png"})
    assert response.status == 502
    error_of(response)


@pytest.mark.parametrize(
    ("route", "body", "status", "needle"),
    [
        ("/incoming", b"{not json", 400, "JSON object"),
        ("/incoming", b"[1, 2]", 400, "JSON object"),
        ("/incoming", b"{}", 400, '"url"'),
        ("/incoming", b'{"url": 42}', 400, "string"),
        ("/incoming", b'{"url": "ftp://example.com/a.png"}', 400, "http"),
        ("/incoming", b'{"url": "/relative.png"}', 400, "http"),
        ("/incoming", b'{"url": "http://exa mple.com/"}', 400, "whitespace"),
        ("/processed", b'{"path": ["/incoming/x"]}', 400, "string"),
        ("/processed", b'{"path": "/processed/' + b"0" * 64 + b'"}', 400, "/incoming/"),
        ("/processed", b'{"path": "https://example.com/a.png"}', 400, "/incoming/"),
        ("/processed", b'{"path": "/incoming/../processed/x"}', 404, "name"),
        ("/processed", b'{"path": "/incoming/' + b"A" * 64 + b'"}', 404, "name"),
        ("/processed", b'{"path": "/incoming/' + b"0" * 64 + b'"}', 404, "name"),
    ],
)
def test_bad_requests(api: Api, route: str, body: bytes, status: int, needle: str):
    response = api.request("POST", route, body=body, headers={"Content-Type": "application/json"})
    assert response.status == status
    assert needle in error_of(response)


@pytest.mark.parametrize("route", ["/incoming", "/processed"])
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_body_must_be_json(api: Api, route: str, content_type: str | None):
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.request("POST", route, body=b'{"url": "x"}', headers=headers)
    assert response.status == 415
    assert "application/json" in error_of(response)


def test_request_body_over_the_limit_is_413(api: Api):
    body = json.dumps({"url": "http://example.com/" + "a" * 100_000}).encode()
    response = api.request(
        "POST", "/incoming", body=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    error_of(response)


@pytest.mark.parametrize(
    "path",
    [
        "/incoming/" + "0" * 64,
        "/processed/" + "f" * 64,
        "/incoming/not-a-name",
        "/processed/" + "F" * 64,
        "/incoming/" + "0" * 63,
        "/incoming/%2e%2e%2fsecret",
        "/no/such/route",
    ],
)
def test_unknown_names_are_404(api: Api, path: str):
    response = api.get(path)
    assert response.status == 404
    error_of(response)


def test_malformed_names_never_reach_storage(own_api: Api, own_s3_server):
    own_s3_server.stop()  # any storage call would now be a 503
    for path in ("/incoming/xyz", "/processed/" + "g" * 64):
        response = own_api.get(path)
        assert response.status == 404
        error_of(response)
    response = own_api.post("/processed", {"path": "/incoming/short"})
    assert response.status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/incoming"),
        ("PUT", "/processed"),
        ("DELETE", "/incoming/" + "0" * 64),
        ("POST", "/healthz"),
        ("POST", "/"),
    ],
)
def test_wrong_method_is_405_json(api: Api, method: str, path: str):
    response = api.request(method, path)
    assert response.status == 405
    assert response.headers["Allow"]
    error_of(response)


def _conversions(api: Api) -> float:
    metrics = api.get("/metrics").data.decode()
    found = re.findall(
        r'^image_conversion_seconds_count\{format="image/png"\} (\S+)$', metrics, re.M
    )
    return sum(float(value) for value in found)


def _object_count(s3_server, bucket: str, name: str) -> int:

    client = s3_server.client()
    return sum(1 for item in client.list_objects(bucket_name=bucket) if item.object_name == name)
