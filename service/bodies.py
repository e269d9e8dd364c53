"""Request bodies: a minimum rate while they arrive, and the size limit however they are framed."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable
from typing import IO, Any

from werkzeug.exceptions import RequestTimeout
from werkzeug.wrappers import Response

from service import offload

# Bytes asked of the socket at a time; each read gets the time the minimum rate allows it.
_PIECE = 16 * 1024


class BodyTooSlowError(RequestTimeout):
    """The client sent its body below the minimum rate; answers 408."""

    description = "The request body arrived too slowly."


class _RateLimitedInput:
    """wsgi.input, read within `grace + received / rate` seconds of the first read (gevent)."""

    def __init__(self, stream: IO[bytes], grace: float, rate: int) -> None:
        self._stream = stream
        self._grace = grace
        self._rate = rate
        self._received = 0
        self._started: float | None = None

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            pieces = []
            while piece := self.read(_PIECE):
                pieces.append(piece)
            return b"".join(pieces)
        return self._timed(lambda: self._stream.read(min(size, _PIECE)))

    def readline(self, size: int = -1) -> bytes:
        return self._timed(lambda: self._stream.readline(size if size >= 0 else _PIECE))

    def _timed(self, read: Any) -> bytes:
        import gevent

        if self._started is None:
            self._started = time.monotonic()
        deadline = self._started + self._grace + (self._received + _PIECE) / self._rate
        try:
            with gevent.Timeout(max(deadline - time.monotonic(), 0)):
                data: bytes = read()
        except gevent.Timeout:
            raise BodyTooSlowError from None
        self._received += len(data)
        return data

    def __iter__(self) -> Iterable[bytes]:
        return iter(lambda: self.read(_PIECE), b"")


class BodyGuard:
    """WSGI middleware: reads the whole body before the app runs, within size and rate.

    A chunked body has no Content-Length, and werkzeug's reader stops at the size limit
    silently; read here, a body over `max_bytes` reaches the app announced as too large,
    so Flask answers 413 however the body was framed.
    """

    def __init__(
        self, app: Any, *, max_bytes: int, grace_seconds: float, min_bytes_per_second: int
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.grace_seconds = grace_seconds
        self.min_bytes_per_second = min_bytes_per_second

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        length = _content_length(environ)
        if chunked or (length is not None and 0 < length <= self.max_bytes):
            stream: Any = environ["wsgi.input"]
            if offload.gevent_hub() is not None:
                stream = _RateLimitedInput(stream, self.grace_seconds, self.min_bytes_per_second)
            try:
                # Never past Content-Length: the next request of the connection follows.
                body = _read_up_to(stream, length if length is not None else self.max_bytes + 1)
            except BodyTooSlowError as error:
                return _too_slow(error)(environ, start_response)
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            if len(body) > self.max_bytes:
                environ["CONTENT_LENGTH"] = str(len(body))  # werkzeug refuses it unread: 413
                body = b""
            else:
                environ["CONTENT_LENGTH"] = str(len(body))
            environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


def _too_slow(error: BodyTooSlowError) -> Response:
    """The API's JSON error. gunicorn then drains the rest of the body under its header
    deadline before another request, so a client that keeps dripping is closed then."""
    return Response(
        json.dumps({"error": error.description}), status=408, mimetype="application/json"
    )


def _content_length(environ: dict[str, Any]) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _read_up_to(stream: Any, limit: int) -> bytes:
    pieces: list[bytes] = []
    size = 0
    while size < limit and (piece := stream.read(min(_PIECE, limit - size))):
        pieces.append(piece)
        size += len(piece)
    return b"".join(pieces)
