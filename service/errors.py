"""Every error the API answers, as JSON with the status that fits; registered once."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from service.admission import BusyError
from service.fetch import FetchError
from service.imaging import ImageRejectedError
from service.storage import NotStoredError, StorageUnavailableError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


def error_response(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


def unavailable(message: str) -> Response:
    """503 with Retry-After: storage is down, and the client may try again soon."""
    response = error_response(503, message)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = error_response(error.code or 500, error.description or error.name)
        # 405 must say which methods the route has.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(FetchError)
    def fetch_error(error: FetchError) -> Response:
        return error_response(error.status, error.message)

    @app.errorhandler(ImageRejectedError)
    def image_rejected(error: ImageRejectedError) -> Response:
        return error_response(422, str(error))

    @app.errorhandler(NotStoredError)
    def not_stored(_error: NotStoredError) -> Response:
        return error_response(404, "No image has that name.")

    @app.errorhandler(StorageUnavailableError)
    def storage_unavailable(error: StorageUnavailableError) -> Response:
        log.warning("storage unavailable: %s", error, extra={"cause": repr(error.__cause__)})
        return unavailable(f"{error} Try again later.")

    @app.errorhandler(BusyError)
    def busy(error: BusyError) -> Response:
        return unavailable(str(error))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # Never a trace to the client; the log line carries it, with the request id.
        log.exception("unhandled error: %s", type(error).__name__)
        return error_response(500, "Internal server error.")
