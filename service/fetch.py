"""Download a user-supplied URL safely: checked and pinned addresses, bounded size and time."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, ClassVar, cast
from urllib.parse import SplitResult, quote, urljoin, urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.response import HTTPResponse
from urllib3.util.ssl_match_hostname import CertificateError

from service import addresses, offload
from service.addresses import IPAddress
from service.settings import FetchSettings

USER_AGENT = "kube-image-processing/0.1"
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
SPOOL_BYTES = 1024 * 1024

Resolver = Callable[[str, int], list[str]]

_NETWORK_ERRORS = (HTTPError, OSError, http.client.HTTPException, CertificateError)
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# An origin may send a few informational answers (103 Early Hints) before the real one.
MAX_INFORMATIONAL = 10
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f-\x9f\s]")


class FetchError(Exception):
    """A download failed; `status` is the HTTP status the API answers with."""

    status: ClassVar[int] = 502

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidUrl(FetchError):  # noqa: N818 (names fixed by the API)
    """The URL is not an absolute http(s) URL the downloader accepts."""

    status = 400


class AddressRefused(FetchError):  # noqa: N818 (names fixed by the API)
    """The host is, or resolves to, an address the downloader must not reach."""

    status = 403


class TooLarge(FetchError):  # noqa: N818 (names fixed by the API)
    """The body is over the download limit."""

    status = 413


class OriginFailed(FetchError):  # noqa: N818 (names fixed by the API)
    """The origin could not be reached or did not deliver the body in full and in time."""

    status = 502


@dataclass
class Download:
    """The downloaded bytes, spooled to disk when large, positioned at the start."""

    file: BinaryIO
    size: int
    sha256: str

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Download:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # ASCII, lowercase, IPv6 without brackets
    port: int
    path: str  # the request target: path and query
    literal: IPAddress | None

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


class _Deadline:
    """The one point in time by which the whole download must be over.

    A timer shuts down the socket in use at that point, so that no read (headers dripped
    one byte at a time included) can outlast it, whatever the per-read timeout.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._connection: HTTPConnection | None = None
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def watch(self, connection: HTTPConnection | None) -> None:
        with self._lock:
            self._connection = connection
            if self.expired and connection is not None:
                _shutdown(connection)

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._connection is not None:
                _shutdown(self._connection)


def _shutdown(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is None:
        return
    # The plain-socket method: SSLSocket.shutdown would tear TLS state from under the reader.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, by getaddrinfo, first choice first."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def fetch(url: str, settings: FetchSettings, *, resolver: Resolver | None = None) -> Download:
    """Download `url` within the limits of `settings`, following up to MAX_REDIRECTS redirects."""
    target = _parse(url, "The URL")
    deadline = _Deadline(settings.download_deadline_seconds)
    try:
        for redirects in range(MAX_REDIRECTS + 1):
            location = _fetch_once(target, settings, resolver or resolve_host, deadline)
            if isinstance(location, Download):
                return location
            if redirects == MAX_REDIRECTS:
                break
            target = _parse(urljoin(target.url, location), "The redirect target")
        raise OriginFailed(f"The origin redirected more than {MAX_REDIRECTS} times.")
    finally:
        deadline.cancel()


def _parse(url: str, what: str) -> _Target:
    if _UNSAFE_CHARS.search(url):
        raise InvalidUrl(f"{what} contains whitespace or control characters.")
    if not url.isascii() and _has_surrogates(url):
        # A lone surrogate (a JSON "\ud800" escape) has no UTF-8 form: it cannot be percent-encoded.
        raise InvalidUrl(f"{what} is not a valid URL.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidUrl(f"{what} is not a valid URL.") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise InvalidUrl(f"{what} must be an absolute http or https URL.")
    if "@" in parts.netloc:
        raise InvalidUrl(f"{what} must not contain credentials.")
    if port == 0:
        raise InvalidUrl(f"{what} has an invalid port.")
    host, literal = _host(parts, what)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    path = _NON_ASCII.sub(lambda match: quote(match.group()), path)
    return _Target(parts.scheme, host, port or _DEFAULT_PORTS[parts.scheme], path, literal)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _host(parts: SplitResult, what: str) -> tuple[str, IPAddress | None]:
    raw = parts.hostname or ""
    if not raw:
        raise InvalidUrl(f"{what} has no host.")
    if parts.netloc.startswith("["):  # credentials were refused, so a bracket opens the host
        try:
            literal6 = ipaddress.IPv6Address(raw)
        except ValueError:
            raise InvalidUrl(f"{what} has an invalid IPv6 address.") from None
        if literal6.scope_id:
            raise InvalidUrl(f"{what} must not name an IPv6 zone.")
        return str(literal6), literal6
    try:
        host = raw.encode("idna").decode("ascii").lower()
        literal4 = addresses.numeric_ipv4(host)
    except (UnicodeError, ValueError):
        raise InvalidUrl(f"{what} has an invalid host name.") from None
    if literal4 is not None:
        return str(literal4), literal4
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise InvalidUrl(f"{what} has an invalid host name.")
    return host, None


def _fetch_once(
    target: _Target, settings: FetchSettings, resolver: Resolver, deadline: _Deadline
) -> Download | str:
    """One request: the Download, or the Location of a redirect."""
    connection, response = _connect_and_request(target, settings, resolver, deadline)
    try:
        if response.status in _REDIRECT_STATUSES:
            location = response.headers.get("Location")
            if not location:
                raise OriginFailed(
                    f"{target.host} answered with a redirect ({response.status}) but no Location."
                )
            return location
        if not 200 <= response.status < 300:
            raise OriginFailed(f"{target.host} answered with HTTP status {response.status}.")
        return _stream(target, response, settings, deadline)
    finally:
        deadline.watch(None)
        response.close()
        connection.close()


def _addresses(
    target: _Target, resolver: Resolver, timeout: float, deadline: _Deadline
) -> list[IPAddress]:
    if target.literal is not None:
        return [target.literal]
    found = _resolve(target, resolver, min(timeout, deadline.remaining()))
    try:
        return [ipaddress.ip_address(address) for address in found]
    except ValueError:
        raise AddressRefused(
            f"{target.host} resolves to something that is no IP address."
        ) from None


def _resolve(target: _Target, resolver: Resolver, seconds: float) -> list[str]:
    # getaddrinfo has no timeout of its own, so it runs elsewhere and we stop waiting for it.
    try:
        result = offload.io(lambda: resolver(target.host, target.port), seconds)
    except offload.DeadlineExceededError:
        raise OriginFailed(
            f"Resolving {target.host} took longer than {seconds:g} seconds."
        ) from None
    except OSError:
        raise OriginFailed(f"{target.host} could not be resolved.") from None
    if not result:
        raise OriginFailed(f"{target.host} resolves to no address.")
    return result


def _check(target: _Target, found: list[IPAddress]) -> None:
    for address in found:
        reason = addresses.refusal_reason(address)
        if reason is None:
            continue
        if target.literal is not None:
            raise AddressRefused(f"{address} is {reason}.")
        raise AddressRefused(f"{target.host} resolves to {address}, which is {reason}.")


def _connect_and_request(
    target: _Target, settings: FetchSettings, resolver: Resolver, deadline: _Deadline
) -> tuple[HTTPConnection, HTTPResponse]:
    found = _addresses(target, resolver, settings.timeout_seconds, deadline)
    if not settings.allow_private_networks:
        _check(target, found)
    failure: FetchError | None = None
    for address in found:
        if deadline.remaining() <= 0:
            raise _timed_out(target, deadline)
        connection = _connection(
            target, address, min(settings.timeout_seconds, deadline.remaining())
        )
        try:
            deadline.watch(connection)
            connection.connect()
            deadline.watch(connection)  # the TLS-wrapped socket replaces the plain one
        except _NETWORK_ERRORS as error:
            connection.close()
            failure = _failure(target, error, settings, deadline)
            if isinstance(error, NewConnectionError) and deadline.remaining() > 0:
                continue  # nothing was sent yet: the next address may answer
            raise failure from None
        try:
            connection.request("GET", target.path, headers=_headers(target), preload_content=False)
            return connection, connection.getresponse()
        except _NETWORK_ERRORS as error:
            connection.close()
            raise _failure(target, error, settings, deadline) from None
    assert failure is not None
    raise failure


class _FinalResponse(http.client.HTTPResponse):
    """The answer after any informational ones: http.client skips 100 Continue but not 103."""

    def _read_status(self) -> tuple[str, int, str]:
        for _ in range(MAX_INFORMATIONAL + 1):
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the hints are of no use to a download
        raise http.client.HTTPException("too many informational responses")


def _connection(target: _Target, address: IPAddress, timeout: float) -> HTTPConnection:
    connection = _plain_connection(target, address, timeout)
    connection.response_class = _FinalResponse
    return connection


def _plain_connection(target: _Target, address: IPAddress, timeout: float) -> HTTPConnection:
    # Connect to the checked address itself; the name only travels in Host, SNI and the
    # certificate check, so a second DNS answer can never redirect the connection.
    if target.scheme == "https":
        return HTTPSConnection(
            str(address),
            target.port,
            timeout=timeout,
            server_hostname=target.host.removesuffix("."),
            assert_hostname=target.host.removesuffix("."),
            cert_reqs="CERT_REQUIRED",
        )
    return HTTPConnection(str(address), target.port, timeout=timeout)


def _headers(target: _Target) -> dict[str, str]:
    return {
        "Host": target.authority,
        "User-Agent": USER_AGENT,
        "Accept": "image/*, */*;q=0.1",
        "Accept-Encoding": "identity",
    }


def _stream(
    target: _Target, response: HTTPResponse, settings: FetchSettings, deadline: _Deadline
) -> Download:
    limit = settings.max_download_bytes
    announced = response.length_remaining
    if announced is not None and announced > limit:
        raise TooLarge(f"The download is {announced} bytes, over the limit of {limit} bytes.")
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (returned open)
    try:
        digest = hashlib.sha256()
        size = 0
        while True:
            if deadline.remaining() <= 0:
                raise _timed_out(target, deadline)
            try:
                # read1 returns what has arrived, so a slow drip still meets the deadline check.
                chunk = response.read1(CHUNK_BYTES)
            except _NETWORK_ERRORS as error:
                if _incomplete(error) and not deadline.expired:
                    raise _truncated(target) from None
                raise _failure(target, error, settings, deadline) from None
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"The download is over the limit of {limit} bytes.")
            digest.update(chunk)
            spool.write(chunk)
        if deadline.expired:
            raise _timed_out(target, deadline)
        if response.length_remaining:
            raise _truncated(target)
        spool.seek(0)
        return Download(file=cast(BinaryIO, spool), size=size, sha256=digest.hexdigest())
    except BaseException:
        spool.close()
        raise


def _incomplete(error: BaseException) -> bool:
    return any(isinstance(e, http.client.IncompleteRead) for e in (error, *error.args))


def _truncated(target: _Target) -> OriginFailed:
    return OriginFailed(f"{target.host} sent fewer bytes than it announced.")


def _timed_out(target: _Target, deadline: _Deadline) -> OriginFailed:
    return OriginFailed(
        f"The download from {target.host} did not finish within {deadline.seconds:g} seconds."
    )


def _failure(
    target: _Target, error: BaseException, settings: FetchSettings, deadline: _Deadline
) -> OriginFailed:
    if deadline.expired:
        return _timed_out(target, deadline)
    if isinstance(error, NewConnectionError):
        return OriginFailed(f"Could not connect to {target.host} on port {target.port}.")
    if isinstance(error, Urllib3Timeout | TimeoutError):
        return OriginFailed(
            f"{target.host} did not answer within {settings.timeout_seconds:g} seconds."
        )
    if isinstance(error, CertificateError | ssl.SSLCertVerificationError):
        return OriginFailed(f"The certificate of {target.host} could not be verified.")
    if isinstance(error, SSLError | ssl.SSLError):
        return OriginFailed(f"The TLS handshake with {target.host} failed.")
    return OriginFailed(f"The connection to {target.host} broke off before the download ended.")
