"""Helpers of the API tests: test images, an origin server, the API under a WSGI server."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import urllib3
from PIL import Image
from werkzeug.serving import BaseWSGIServer, make_server

from service.app import create_app
from tests.servers import serving

BIG_BYTES = 20 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 24 * 1024 * 1024
MAX_IMAGE_PIXELS = 20_000_000


def photo(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Something photo-like: gradients and noise."""
    ramp = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 30)
    rgb = Image.merge("RGB", (ramp, noise, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    return rgb.convert(mode)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _animation() -> bytes:
    frames = [photo(64, 48).rotate(angle) for angle in (0, 30, 60, 90)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def _grey16() -> Image.Image:
    levels = b"".join((level * 257).to_bytes(2, "little") for level in range(256))
    return Image.frombytes("I;16", (256, 4), levels * 4)


def _big_png() -> bytes:
    # Random pixels do not compress: a PNG of just over BIG_BYTES.
    side = 2700
    noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    data = encode(noise, "PNG", compress_level=0)
    assert len(data) > BIG_BYTES
    return data


def build_images() -> dict[str, bytes]:
    jpeg = encode(photo(320, 240), "JPEG", quality=85)
    png = encode(photo(320, 240), "PNG")
    gif = encode(photo(64, 48), "GIF")
    big_png = _big_png()
    return {
        "photo.jpg": jpeg,
        "photo.png": png,
        "palette.png": encode(photo(64, 48).convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "alpha.png": encode(photo(64, 48, "RGBA"), "PNG"),
        "grey16.png": encode(_grey16(), "PNG"),
        "photo.gif": gif,
        "animated.gif": _animation(),
        "photo.webp": encode(photo(320, 240), "WEBP", quality=80),
        "lossless.webp": encode(photo(64, 48), "WEBP", lossless=True),
        "cmyk.jpg": encode(photo(320, 240, "CMYK"), "JPEG", quality=85),
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "truncated.gif": gif[: len(gif) // 2],
        "big-truncated.png": big_png[: len(big_png) - 1000],
        "bomb.png": encode(Image.new("L", (5000, 5000)), "PNG"),
        "page.html": b"<!doctype html><html><body>not an image</body></html>",
        "empty.png": b"",
        "big.png": big_png,
        # Over REMEMBER_IN_STORAGE_BYTES: its conversion is also remembered in storage.
        "large.jpg": encode(photo(1600, 1200), "JPEG", quality=95),
    }


class _Origin(BaseHTTPRequestHandler):
    server: OriginServer

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        route = self.path.split("?")[0]
        if route.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("to=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/endless":
            # Bigger than any limit, and no Content-Length to give it away up front.
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            chunk = b"\0" * 65536
            try:
                for _ in range(MAX_DOWNLOAD_BYTES // len(chunk) + 16):
                    self.wfile.write(chunk)
            except OSError:
                pass
            self.close_connection = True
        elif route == "/error":
            self.send_error(500)
        elif route.lstrip("/") in self.server.images:
            body = self.server.images[route.lstrip("/")]
            self.send_response(200)
            # A lying header: the API must tell the type from the bytes.
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *_args: object) -> None:
        pass


class OriginServer(ThreadingHTTPServer):
    """The site images are downloaded from, on loopback."""

    daemon_threads = True

    def __init__(self, images: Mapping[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Origin)
        self.images = images
        self.requests: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@dataclass
class Api:
    """The app under a real threaded WSGI server, and a client that speaks to it."""

    server: BaseWSGIServer
    http: urllib3.PoolManager = field(
        default_factory=lambda: urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60), retries=False
        )
    )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def request(self, method: str, path: str, **kwargs: Any) -> urllib3.BaseHTTPResponse:
        return self.http.request(method, self.base + path, **kwargs)

    def post(self, path: str, body: object) -> urllib3.BaseHTTPResponse:
        return self.request("POST", path, json=body)

    def upload(self, url: str) -> str:
        response = self.post("/incoming", {"url": url})
        assert response.status == 201, response.data
        return str(response.json()["path"])

    def process(self, path: str) -> str:
        response = self.post("/processed", {"path": path})
        assert response.status == 201, response.data
        return str(response.json()["path"])

    def get(self, path: str, **kwargs: Any) -> urllib3.BaseHTTPResponse:
        return self.request("GET", path, **kwargs)


def serve(env: Mapping[str, str]) -> Iterator[Api]:
    app = create_app(env)
    with serving(make_server("127.0.0.1", 0, app, threaded=True)) as server:
        yield Api(server)


def api_env(storage_env: Mapping[str, str], **extra: str) -> dict[str, str]:
    return {
        **storage_env,
        "FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        "MAX_DOWNLOAD_BYTES": str(MAX_DOWNLOAD_BYTES),
        "MAX_IMAGE_PIXELS": str(MAX_IMAGE_PIXELS),
        "FETCH_TIMEOUT_SECONDS": "5",
        "STORAGE_TIMEOUT_SECONDS": "2",
        **extra,
    }


@dataclass
class FakeInternet:
    """Name resolution and connections stubbed: no packet leaves loopback, whatever the code does.

    `names` maps a host name to the addresses it "resolves" to; `routes` maps a public
    address to the loopback port that plays it. Every other connection outside loopback is
    recorded in `refused` and fails.
    """

    names: dict[str, list[str]] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)
    refused: list[Any] = field(default_factory=list)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def error_of(response: urllib3.BaseHTTPResponse) -> str:
    """The message of a JSON error answer, after checking that it is one."""
    assert response.headers["Content-Type"] == "application/json", response.data[:200]
    body = json.loads(response.data)
    assert isinstance(body["error"], str)
    assert body["error"]
    assert "Traceback" not in body["error"]
    return body["error"]
