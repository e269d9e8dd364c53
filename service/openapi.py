"""The API's description: the OpenAPI document and the list of routes at /."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from flask.blueprints import BlueprintSetupState

from service.limits import describe_limits, largest_images

bp = Blueprint("openapi", __name__)

EXTENSION = "openapi_document"


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3 document shipped beside this module."""
    loaded: dict[str, Any] = json.loads(
        resources.files("service").joinpath("openapi.json").read_text("utf-8")
    )
    return loaded


def served_document(
    memory_limit_bytes: int, workers: int, max_image_pixels: int, max_download_bytes: int
) -> dict[str, Any]:
    """document(), with the largest image of each kind that a pod with these settings
    converts appended to the description of POST /incoming."""
    served = copy.deepcopy(document())
    operation = served["paths"]["/incoming"]["post"]
    limits = largest_images(memory_limit_bytes, workers, max_image_pixels, max_download_bytes)
    operation["description"] = f"{operation['description']} {describe_limits(limits)}"
    return served


@bp.record_once
def _describe_at_start(state: BlueprintSetupState) -> None:
    """Computed once, when create_app registers this blueprint, from the app's settings."""
    api = state.app.extensions["image_api"]
    state.app.extensions[EXTENSION] = served_document(
        api.admission.settings.memory_limit_bytes,
        api.admission.workers,
        api.fetch_settings.max_image_pixels,
        api.fetch_settings.max_download_bytes,
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(current_app.extensions[EXTENSION])


@bp.get("/")
def index() -> Response:
    """Every route with its methods, so that a client can find its way."""
    routes = [
        {"path": rule.rule, "methods": sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})}
        for rule in sorted(current_app.url_map.iter_rules(), key=lambda rule: rule.rule)
    ]
    return jsonify(name="kube-image-processing image API", routes=routes)
