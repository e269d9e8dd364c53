"""The API's description: the OpenAPI document and the list of routes at /."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

bp = Blueprint("openapi", __name__)


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3 document shipped beside this module."""
    loaded: dict[str, Any] = json.loads(
        resources.files("service").joinpath("openapi.json").read_text("utf-8")
    )
    return loaded


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())


@bp.get("/")
def index() -> Response:
    """Every route with its methods, so that a client can find its way."""
    routes = [
        {"path": rule.rule, "methods": sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})}
        for rule in sorted(current_app.url_map.iter_rules(), key=lambda rule: rule.rule)
    ]
    return jsonify(name="kube-image-processing image API", routes=routes)
