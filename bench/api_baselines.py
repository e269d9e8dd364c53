"""The two apps bench/api_throughput.py compares the image API with, as their authors would write them.

naive:    Flask + Pillow, served by gunicorn with the API's worker settings:
          `gunicorn ... "bench.api_baselines:naive_app()"`.
original: the original app: Flask's own server, ImageMagick's `convert` as a
          subprocess, whole objects read into memory: `python bench/api_baselines.py PORT`.

Both answer POST /processed {"path": "/incoming/<name>"} with 201 {"path": "/processed/<sha256>"}
and read the storage settings of the API (MINIO_ENDPOINT, MINIO_ACCESS_KEY, MINIO_SECRET_KEY).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from collections.abc import Callable

from flask import Flask, Response, jsonify, request
from minio import Minio
from PIL import Image

from service.settings import StorageSettings
from service.storage import close_response


def _read(client: Minio, bucket: str, name: str) -> bytes:
    response = client.get_object(bucket_name=bucket, object_name=name)
    try:
        return response.read()
    finally:
        close_response(response)


def _app(convert: Callable[[bytes], tuple[bytes, str]]) -> Flask:
    storage = StorageSettings.from_env()
    client = Minio(
        endpoint=storage.endpoint,
        access_key=storage.access_key,
        secret_key=storage.secret_key,
        secure=False,
    )
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.post("/processed")
    def processed() -> tuple[Response, int]:
        name = request.get_json()["path"].removeprefix("/incoming/")
        data, content_type = convert(_read(client, storage.incoming_bucket, name))
        result = hashlib.sha256(data).hexdigest()
        client.put_object(
            bucket_name=storage.processed_bucket,
            object_name=result,
            data=io.BytesIO(data),
            length=len(data),
            content_type=content_type,
        )
        return jsonify(path=f"/processed/{result}"), 201

    return app


def _pillow(data: bytes) -> tuple[bytes, str]:
    image = Image.open(io.BytesIO(data))
    fmt = image.format
    out = io.BytesIO()
    # Pillow's defaults, but a lossless WebP (a VP8L chunk) is saved losslessly, as its
    # author would ask: lossy output of a lossless input would be no fair comparison.
    options = {"lossless": True} if fmt == "WEBP" and b"VP8L" in data[:64] else {}
    image.convert("L").save(out, fmt, **options)
    return out.getvalue(), Image.MIME[str(fmt)]


def _imagemagick(data: bytes) -> tuple[bytes, str]:
    grey = subprocess.run(
        ["/usr/bin/convert", "-", "-colorspace", "Gray", "-"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout
    return grey, "image/jpeg"


def naive_app() -> Flask:
    return _app(_pillow)


def original_app() -> Flask:
    return _app(_imagemagick)


if __name__ == "__main__":
    original_app().run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
