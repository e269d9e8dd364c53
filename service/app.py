"""create_app(): the Flask app factory of the image API."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Mapping

from flask import Flask
from PIL import Image

from service import health, images, observability, openapi, robots
from service.admission import Admission
from service.bodies import BodyGuard
from service.errors import register_error_handlers
from service.settings import (
    ApiSettings,
    FetchSettings,
    RobotsSettings,
    ServingSettings,
    SettingsError,
    StorageSettings,
)
from service.storage import Storage, StorageUnavailableError

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """The API, with settings read once from `env` (the process environment by default)."""
    observability.configure_logging()
    try:
        storage_settings = StorageSettings.from_env(env)
        fetch_settings = FetchSettings.from_env(env)
        api_settings = ApiSettings.from_env(env)
        robots_settings = RobotsSettings.from_env(env)
        serving = ServingSettings.from_env(env)
    except SettingsError as error:
        # One line that names the setting, and no traceback: the operator's fix is obvious.
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

    # Pillow refuses twice the limit itself; imaging refuses anything over it, so the
    # warning Pillow gives in between says nothing new.
    Image.MAX_IMAGE_PIXELS = fetch_settings.max_image_pixels
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    # Otherwise "/incoming//<name>" answers a 308 redirect in HTML; it is no route, so 404.
    app.url_map.merge_slashes = False
    storage = Storage(storage_settings, api_settings.storage_timeout_seconds)
    app.extensions["image_api"] = images.ImageApi(
        storage=storage,
        fetch_settings=fetch_settings,
        admission=Admission(serving, serving.web_concurrency),
    )
    app.wsgi_app = BodyGuard(  # type: ignore[method-assign]
        app.wsgi_app,
        max_bytes=MAX_REQUEST_BYTES,
        grace_seconds=serving.header_timeout_seconds,
        min_bytes_per_second=serving.body_min_bytes_per_second,
    )
    app.extensions[robots.EXTENSION] = robots.robots_txt(robots_settings.sitemap_index_url)

    observability.init_app(app)
    register_error_handlers(app)
    for blueprint in (openapi.bp, health.bp, images.bp, robots.bp):
        app.register_blueprint(blueprint)

    try:
        storage.ensure_buckets()
    except StorageUnavailableError as error:
        # Start anyway: /readyz answers 503 until storage is back, then creates the buckets.
        log.warning("storage unavailable at start-up: %s", error)
    return app
