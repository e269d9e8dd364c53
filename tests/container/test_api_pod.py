"""The image API's container, run as the dev stack's Deployment declares it, driven over HTTP.

Not Kubernetes: no kubelet, no CNI, podman's default seccomp profile rather than the node's
RuntimeDefault, and a stand-in base image where the official one cannot be pulled (see
standin_base.py). The pod reaches the test's servers on the host's loopback through
slirp4netns (engine.HOST_LOOPBACK); its port is published on 127.0.0.1 only.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3
from PIL import Image

from service.limits import EVERYDAY_PIXELS
from service.settings import FetchSettings, env_name
from tests.conftest import S3Server
from tests.container.engine import HOST_LOOPBACK, Build
from tests.container.pod import PodContainer, Running, start
from tests.servers import serving
from tests.service.api_support import encode, photo

# The first test of a session builds the image: a cold build takes minutes (docs/testing.md).
pytestmark = pytest.mark.timeout(1500)

IMAGES = {
    "photo.jpg": encode(photo(320, 240), "JPEG", quality=85),
    "photo.png": encode(photo(320, 240), "PNG"),
}
# How long the origin holds the answer to /slow/<name>: a request in flight during SIGTERM.
SLOW_SECONDS = 3.0


class _Origin(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/slow/"):
            self.server.slow_started.set()  # type: ignore[attr-defined]
            time.sleep(SLOW_SECONDS)
        body = IMAGES.get(name)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    server.daemon_threads = True
    server.slow_started = threading.Event()  # type: ignore[attr-defined]
    with serving(server):
        yield server


def _origin_url(origin: ThreadingHTTPServer, path: str) -> str:
    return f"http://{HOST_LOOPBACK}:{origin.server_address[1]}{path}"


@pytest.fixture
def api(built: Build, api_spec: PodContainer, own_s3_server: S3Server) -> Iterator[Running]:
    overrides = {
        # The MinIO Service's address becomes the test's S3 server on the host's loopback.
        "MINIO_ENDPOINT": f"{HOST_LOOPBACK}:{own_s3_server.port}",
        "MINIO_ACCESS_KEY": own_s3_server.access_key,
        "MINIO_SECRET_KEY": own_s3_server.secret_key,
        # The origin is on the host's loopback, which production settings rightly refuse.
        "FETCH_ALLOW_PRIVATE_NETWORKS": "true",
    }
    running = start(api_spec, built.image, overrides)
    try:
        running.wait_until("readinessProbe")
        yield running
    finally:
        running.remove()


def _call(running: Running, method: str, path: str, body: Any = None) -> urllib3.BaseHTTPResponse:
    return urllib3.request(
        method,
        running.url("http", path),
        json=body,
        timeout=urllib3.Timeout(connect=5, read=60),
        retries=False,
    )


def test_probes_pass_at_their_declared_paths(api: Running) -> None:
    assert api.probe("livenessProbe")
    assert api.probe("readinessProbe")
    assert _call(api, "GET", "/healthz").status == 200
    assert _call(api, "GET", "/readyz").status == 200


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_upload_convert_and_read_back(api: Running, origin: ThreadingHTTPServer, name: str) -> None:
    uploaded = _call(api, "POST", "/incoming", {"url": _origin_url(origin, f"/{name}")})
    assert uploaded.status == 201, uploaded.data
    incoming = uploaded.json()["path"]
    assert _call(api, "GET", incoming).data == IMAGES[name]
    converted = _call(api, "POST", "/processed", {"path": incoming})
    assert converted.status == 201, converted.data
    result = _call(api, "GET", converted.json()["path"])
    assert result.status == 200
    image = Image.open(io.BytesIO(result.data))
    assert image.format == Image.open(io.BytesIO(IMAGES[name])).format
    assert image.mode in ("L", "LA")
    metrics = _call(api, "GET", "/metrics").data.decode()
    assert 'route="/incoming"' in metrics
    assert 'route="/processed"' in metrics


@pytest.fixture(scope="module")
def phone_sized(api_spec: PodContainer) -> dict[str, bytes]:
    """A 12 MP phone photo as WebP and JPEG, and the largest photo PNG that the dev stack's
    download limit (MAX_DOWNLOAD_BYTES in the pod's env, 20 MiB) lets in, served by the origin."""
    download_limit = int(api_spec.env()[env_name(FetchSettings, "max_download_bytes")])
    assert download_limit == 20 * 1024 * 1024, "the dev stack's"
    picture = photo(4000, 3000)
    assert picture.width * picture.height == EVERYDAY_PIXELS
    made = {
        "phone.webp": encode(picture, "WEBP", quality=80),
        "phone.jpg": encode(picture, "JPEG", quality=90),
        "largest-photo.png": _largest_photo_png(download_limit),
    }
    IMAGES.update(made)
    return made


def _largest_photo_png(limit: int) -> bytes:
    """A photo PNG within `limit` bytes and within 2 % of it: 15 MP at 1.4 bytes each for
    20 MiB. Saved at zlib's level 1, a tenth of the default level's time for a few % more."""
    trial = len(encode(photo(1000, 750), "PNG", compress_level=1)) / (1000 * 750)
    pixels = int(limit / trial)
    while True:
        width = int((pixels * 4 / 3) ** 0.5)
        data = encode(photo(width, width * 3 // 4), "PNG", compress_level=1)
        if len(data) <= limit:
            return data
        pixels = int(pixels * 0.99)


@pytest.mark.parametrize("name", ["phone.webp", "phone.jpg", "largest-photo.png"])
def test_a_phone_sized_image_converts_on_the_dev_pod(
    api: Running, origin: ThreadingHTTPServer, phone_sized: dict[str, bytes], name: str
) -> None:
    """Within the dev stack's 512 Mi, 2 workers and 20 MiB downloads."""
    assert api.spec.container["resources"]["limits"]["memory"] == "512Mi"
    uploaded = _call(api, "POST", "/incoming", {"url": _origin_url(origin, f"/{name}")})
    assert uploaded.status == 201, uploaded.data
    converted = _call(api, "POST", "/processed", {"path": uploaded.json()["path"]})
    assert converted.status == 201, converted.data
    result = _call(api, "GET", converted.json()["path"])
    assert result.status == 200
    image = Image.open(io.BytesIO(result.data))
    before = Image.open(io.BytesIO(phone_sized[name]))
    assert (image.format, image.size) == (before.format, before.size)
    assert image.width * image.height >= EVERYDAY_PIXELS


def test_sigterm_drains_and_exits_zero(api: Running, origin: ThreadingHTTPServer) -> None:
    """A request in flight when SIGTERM comes is answered; the server exits 0 within the grace."""
    answers: list[urllib3.BaseHTTPResponse] = []
    request = threading.Thread(
        target=lambda: answers.append(
            _call(api, "POST", "/incoming", {"url": _origin_url(origin, "/slow/photo.png")})
        )
    )
    request.start()
    assert origin.slow_started.wait(30)  # type: ignore[attr-defined]
    code, seconds = api.stop()
    request.join(60)
    assert answers, api.logs()
    assert answers[0].status == 201, answers[0].data
    assert code == 0, api.logs()
    assert seconds < api.spec.grace_seconds
    # Read-only root: the process wrote nothing outside its emptyDirs.
    assert api.written() == []


def test_a_stopping_pod_serves_through_its_drain(api: Running) -> None:
    """While the preStop sleep runs (endpoints being removed), new requests still get answers."""
    assert api.spec.pre_stop_seconds >= 1
    stopped: list[tuple[int, float]] = []
    stopping = threading.Thread(target=lambda: stopped.append(api.stop()))
    stopping.start()
    time.sleep(api.spec.pre_stop_seconds / 2)
    assert _call(api, "GET", "/readyz").status == 200
    stopping.join(api.spec.grace_seconds + 60)
    code, seconds = stopped[0]
    assert code == 0, api.logs()
    assert api.spec.pre_stop_seconds <= seconds < api.spec.grace_seconds


def test_root_file_system_is_read_only(api: Running) -> None:
    for path in ("/app/written", "/opt/venv/written", "/etc/written"):
        completed = api.exec("sh", "-c", f"echo x > {path}")
        assert completed.returncode != 0
        assert "Read-only file system" in completed.stderr
    for emptydir in api.spec.container["volumeMounts"]:
        if emptydir["name"] in api.spec.empty_dirs():
            path = f"{emptydir['mountPath']}/written"
            assert api.exec("sh", "-c", f"echo x > {path} && rm {path}").returncode == 0
