"""/robots.txt: crawlers may fetch the processed images, and learn where their sitemap is."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

bp = Blueprint("robots", __name__)
EXTENSION = "robots_txt"


def robots_txt(sitemap_index_url: str | None) -> str:
    """The file's text; naming the index makes a sitemap on another host valid for this one."""
    lines = ["User-agent: *", "Allow: /processed/", "Disallow: /"]
    if sitemap_index_url:
        lines += ["", f"Sitemap: {sitemap_index_url}"]
    return "\n".join(lines) + "\n"


@bp.get("/robots.txt")
def robots() -> Response:
    response = Response(current_app.extensions[EXTENSION], mimetype="text/plain")
    response.cache_control.public = True
    response.cache_control.max_age = 3600
    return response
