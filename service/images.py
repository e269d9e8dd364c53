"""The image routes: download into /incoming, convert into /processed, and read both back."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property

from flask import Blueprint, Response, abort, current_app, jsonify, request

from service import contenttype
from service.admission import Admission
from service.conversions import ConversionMemo
from service.fetch import fetch
from service.observability import CONVERSION
from service.settings import FetchSettings
from service.storage import Storage, StoredObject

bp = Blueprint("images", __name__)

NAME = re.compile(r"[0-9a-f]{64}")
CACHE_FOREVER = "public, max-age=31536000, immutable"
SPOOL_BYTES = 8 * 1024 * 1024
# The name of an image's greyscale version is remembered in two places. Every pod keeps it
# in a memo its workers share (service.conversions), which costs no round trip. Sources this
# big or bigger, whose conversion costs far more than a round trip, also carry it in a tag
# of the original in the incoming bucket, written off the request path: it survives
# restarts and is seen by every replica, and a GET of the original says whether it has
# tags, so looking for it costs a fresh conversion nothing. Tags appear in no listing.
# Below 1 MiB a source converts in about 25 ms or less (an 800x600 PNG photo of 0.7 MB),
# and the tag's PUT would be a third S3 call on every fresh conversion
# (bench/api_throughput.py: PNG photos and GIFs of 0.3 to 0.7 MB paid it).
REMEMBER_IN_STORAGE_BYTES = 1024 * 1024
RESULT_TAG = "greyscale"


@dataclass(frozen=True)
class ImageApi:
    """What the routes need, built once by create_app."""

    storage: Storage
    fetch_settings: FetchSettings
    admission: Admission

    @cached_property
    def conversions(self) -> ConversionMemo:
        storage = self.storage
        return ConversionMemo(f"{storage.endpoint}/{storage.incoming}/{storage.processed}")


def _api() -> ImageApi:
    api: ImageApi = current_app.extensions["image_api"]
    return api


@bp.post("/incoming")
def download() -> tuple[Response, int]:
    """Download the image at `url` and store it under its SHA-256."""
    url = _field("url")
    api = _api()
    with api.admission.download_slot(), fetch(url, api.fetch_settings) as downloaded:
        content_type = contenttype.detect(downloaded.file)
        api.admission.check_upload(downloaded.file, api.fetch_settings.max_image_pixels)
        downloaded.file.seek(0)
        storage = api.storage
        # Unlike a result, an original is looked for first: a repeated download then neither
        # sends its bytes to storage again nor drops the tag that remembers its conversion.
        storage.put_if_absent(
            storage.incoming, downloaded.sha256, downloaded.file, downloaded.size, content_type
        )
        return _created(f"/incoming/{downloaded.sha256}")


@bp.post("/processed")
def process() -> tuple[Response, int]:
    """Convert a stored image to greyscale, once, and store the result under its SHA-256."""
    path = _field("path")
    if not path.startswith("/incoming/"):
        abort(400, description='The path must be "/incoming/<name>", as POST /incoming gave it.')
    source = _valid_name(path.removeprefix("/incoming/"))
    api = _api()
    storage = api.storage
    done = _converted_before(api, source)
    if done is not None:
        return _created(f"/processed/{done}")
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as original:
        stored = storage.open(storage.incoming, source)
        try:
            done = _remembered_by(stored, api, source)
            if done is not None:
                return _created(f"/processed/{done}")
            stored.read_into(original)
        finally:
            stored.close()
        started = time.perf_counter()
        result = api.admission.greyscale(original, api.fetch_settings.max_image_pixels)
        CONVERSION.labels(result.content_type).observe(time.perf_counter() - started)
    name = hashlib.sha256(result.data).hexdigest()
    # Named by its bytes: a PUT over the same name stores the same bytes, so no HEAD first.
    storage.put(
        storage.processed, name, io.BytesIO(result.data), len(result.data), result.content_type
    )
    api.conversions.put(source, name)
    if stored.size >= REMEMBER_IN_STORAGE_BYTES:
        storage.tag_later(storage.incoming, source, RESULT_TAG, name)
    return _created(f"/processed/{name}")


@bp.get("/incoming/<name>")
def incoming(name: str) -> Response:
    """The stored original."""
    return _serve(_api().storage.incoming, name)


@bp.get("/processed/<name>")
def processed(name: str) -> Response:
    """The stored greyscale image."""
    return _serve(_api().storage.processed, name)


def _field(name: str) -> str:
    if not request.is_json:
        abort(415, description="The body must be JSON, sent with Content-Type: application/json.")
    body = _json_body()
    if not isinstance(body, dict):
        abort(400, description=f'The body must be a JSON object such as {{"{name}": "…"}}.')
    value = body.get(name)
    if value is None:
        abort(400, description=f'The body has no "{name}" field.')
    if not isinstance(value, str):
        abort(400, description=f'The "{name}" field must be a string.')
    return value


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # json keeps the last of two equal keys silently, so a proxy that reads the first one
    # would see another request than this API: refuse the ambiguity instead.
    body: dict[str, object] = {}
    for key, value in pairs:
        if key in body:
            raise _DuplicateKeyError(key)
        body[key] = value
    return body


def _json_body() -> object:
    """The body as JSON in UTF-8 (RFC 8259), or None when it is not."""
    try:
        return json.loads(request.get_data().decode("utf-8"), object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as error:
        abort(400, description=f'The body has the key "{error.key}" more than once.')
    # RecursionError: nesting deeper than the parser's stack, from a body within the size limit.
    except (ValueError, RecursionError):
        return None


def _valid_name(name: str) -> str:
    # Names are SHA-256 digests; anything else cannot exist, so storage is not even asked.
    if not NAME.fullmatch(name):
        abort(404, description="No image has that name: names are 64 lowercase hex digits.")
    return name


def _converted_before(api: ImageApi, source: str) -> str | None:
    """The result this pod remembers for `source`, if it is still stored."""
    name = api.conversions.get(source)
    if name is not None and api.storage.exists(api.storage.processed, name):
        return name
    return None


def _remembered_by(stored: StoredObject, api: ImageApi, source: str) -> str | None:
    """The result named by the tag of the original being read, if it is still stored."""
    if not stored.tagged:
        return None
    storage = api.storage
    name = storage.tag(storage.incoming, source, RESULT_TAG)
    if name is None or not NAME.fullmatch(name) or not storage.exists(storage.processed, name):
        return None
    api.conversions.put(source, name)
    return name


def _created(path: str) -> tuple[Response, int]:
    response = jsonify(path=path)
    response.headers["Location"] = path
    return response, 201


def _serve(bucket: str, name: str) -> Response:
    _valid_name(name)
    storage = _api().storage
    if request.if_none_match.contains_weak(name):
        storage.stat(bucket, name)  # a 304 only for an object that is really there
        response = Response(status=304)
    else:
        stored = storage.open(bucket, name)
        response = Response(stored, content_type=stored.content_type, direct_passthrough=True)
        response.content_length = stored.size
    response.set_etag(name)
    response.headers["Cache-Control"] = CACHE_FOREVER
    # The bytes come from anywhere (a GIF may also be valid JavaScript): browsers must take
    # the stored type as it is, never sniff another.
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
