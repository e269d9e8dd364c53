"""Liveness and readiness probes for Kubernetes."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; nothing else is checked."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Storage answers and both buckets exist (created here if storage came back empty)."""
    current_app.extensions["image_api"].storage.ensure_buckets()
    return jsonify(status="ready")
