"""Request bodies: a minimum rate while they arrive, and the size limit however they are framed."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import IO, Any

from werkzeug.exceptions import RequestTimeout

from service import offload

# Bytes asked of the socket at a time; each read gets the time the minimum rate allows it.
_PIECE = 16 * 1024


class BodyTooSlowError(RequestTimeout):
    """The client sent its body below the minimum rate; answers 408 and closes."""

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
    """WSGI middleware in front of the app: see the module docstring."""

    def __init__(self, app: Any, *, grace_seconds: float, min_bytes_per_second: int) -> None:
        self.app = app
        self.grace_seconds = grace_seconds
        self.min_bytes_per_second = min_bytes_per_second

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            # The server ends the chunked stream itself; with this flag werkzeug applies
            # MAX_CONTENT_LENGTH to it (413) instead of reading it as empty.
            environ["wsgi.input_terminated"] = True
        if offload.gevent_hub() is not None:
            environ["wsgi.input"] = _RateLimitedInput(
                environ["wsgi.input"], self.grace_seconds, self.min_bytes_per_second
            )
        return self.app(environ, start_response)
