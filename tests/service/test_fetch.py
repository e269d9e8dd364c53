"""The safe downloader against a real origin on loopback, with name resolution stubbed.

No test here may send a packet beyond 127.0.0.0/8 or ::1: an autouse guard turns every
connect to another address, and every real DNS lookup, into a test failure, and records
the connections urllib3 opens so that tests can assert none was attempted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3.util.connection

from service import addresses
from service.fetch import (
    USER_AGENT,
    AddressRefused,
    Download,
    FetchError,
    InvalidUrl,
    OriginFailed,
    TooLarge,
    fetch,
    resolve_host,
)
from service.settings import FetchSettings
from tests.service.fetch_origin import IMAGE, OriginServer, pattern_sha256, tls_context

MB = 1024 * 1024


def settings(
    *, private: bool = True, max_bytes: int = 25 * MB, timeout: float = 5.0
) -> FetchSettings:
    return FetchSettings(
        max_download_bytes=max_bytes,
        max_image_pixels=64_000_000,
        timeout_seconds=timeout,
        allow_private_networks=private,
    )


GUARDED = settings(private=False)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every (host, port) urllib3 connected to; anything but loopback fails the test."""
    attempted: list[tuple[str, int]] = []
    real_urllib3_connect = urllib3.util.connection.create_connection
    real_socket_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def urllib3_connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        attempted.append((address[0], address[1]))
        if not _is_loopback(address[0]):
            raise AssertionError(f"the code under test connected to {address}")
        return real_urllib3_connect(address, *args, **kwargs)

    def socket_connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise AssertionError(f"something connected to {address}")
        real_socket_connect(self, address)

    def socket_create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"socket.create_connection({address}) is not how fetch connects")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(str(host)):
            raise AssertionError(f"a real DNS lookup of {host!r} was attempted")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", urllib3_connect)
    monkeypatch.setattr(socket.socket, "connect", socket_connect)
    monkeypatch.setattr(socket, "create_connection", socket_create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempted


@pytest.fixture(scope="module")
def origin() -> Iterator[OriginServer]:
    server = OriginServer()
    yield server
    server.stop()


def stub_resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


NAMES = stub_resolver(
    {
        "evil.test": ["10.0.0.5"],
        "meta.test": ["169.254.169.254"],
        "v6.test": ["fd00::1"],
        "mapped.test": ["::ffff:127.0.0.1"],
        "nat64.test": ["64:ff9b::a9fe:a9fe"],
        "shared.test": ["100.64.0.1"],
        "mixed.test": ["127.0.0.1", "10.0.0.5"],
        "loop.test": ["127.0.0.1"],
        "pinned.test": ["127.0.0.1"],
    }
)


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test-only seam: the address policy lets exactly 127.0.0.1 through, as if it were public.

    The guarded tests need an origin they may reach, and the only one there is lives on
    127.0.0.1, which the real policy refuses. Every other address keeps its real verdict:
    127.0.0.2, ::1, 10.x and 169.254.169.254 stay refused, so a redirect there shows the
    hop check at work while `connections` shows that only 127.0.0.1 was ever reached.
    """
    real = addresses.refusal_reason

    def policy(address: addresses.IPAddress) -> str | None:
        return None if address == ipaddress.IPv4Address("127.0.0.1") else real(address)

    monkeypatch.setattr(addresses, "refusal_reason", policy)


def assert_one_clear_sentence(error: FetchError) -> None:
    assert error.message == str(error)
    assert error.message.endswith(".")
    assert "\n" not in error.message
    for noise in ("Traceback", "object at", "Error(", "<"):
        assert noise not in error.message


# --- the interface -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [(InvalidUrl, 400), (AddressRefused, 403), (TooLarge, 413), (OriginFailed, 502)],
)
def test_each_error_carries_its_api_status(kind: type[FetchError], status: int) -> None:
    error = kind("Something went wrong.")
    assert isinstance(error, FetchError)
    assert error.status == status
    assert error.message == "Something went wrong."


def test_a_download_is_spooled_hashed_and_rewound(origin: OriginServer) -> None:
    with fetch(origin.url("/image"), settings()) as download:
        assert isinstance(download, Download)
        assert download.size == len(IMAGE)
        assert download.sha256 == hashlib.sha256(IMAGE).hexdigest()
        assert download.file.read() == IMAGE
    assert download.file.closed


def test_informational_answers_before_the_image_are_skipped(origin: OriginServer) -> None:
    with fetch(origin.url("/early-hints?count=3"), settings()) as download:
        assert download.file.read() == IMAGE


def test_endless_informational_answers_are_an_origin_failure(origin: OriginServer) -> None:
    with pytest.raises(OriginFailed) as caught:
        fetch(origin.url("/early-hints?count=50"), settings())
    assert_one_clear_sentence(caught.value)


def test_twenty_megabytes_within_a_25_megabyte_limit(origin: OriginServer) -> None:
    size = 20 * MB
    download = fetch(origin.url(f"/big?size={size}"), settings(max_bytes=25 * MB))
    try:
        assert download.size == size
        assert download.sha256 == pattern_sha256(size)
        assert download.file.read(4) == bytes(range(4))
    finally:
        download.close()


def test_sends_the_user_agent_and_the_original_host(
    origin: OriginServer, connections: list[tuple[str, int]]
) -> None:
    """DNS pinning: the name is resolved once, the checked IP is dialled, Host keeps the name."""
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    url = origin.url("/echo-headers", host="pinned.test")
    with fetch(url, settings(), resolver=resolver) as download:
        headers = json.loads(download.file.read())
    assert headers["Host"] == f"pinned.test:{origin.port}"
    assert headers["User-Agent"] == USER_AGENT == "kube-image-processing/0.1"
    assert lookups == ["pinned.test"]
    assert connections == [("127.0.0.1", origin.port)]


def test_falls_back_to_the_next_address_when_one_refuses(
    origin: OriginServer, connections: list[tuple[str, int]]
) -> None:
    resolver = stub_resolver({"two.test": ["127.0.0.2", "127.0.0.1"]})
    with fetch(origin.url("/image", host="two.test"), settings(), resolver=resolver) as download:
        assert download.size == len(IMAGE)
    assert connections == [("127.0.0.2", origin.port), ("127.0.0.1", origin.port)]


def test_an_ipv6_literal_is_dialled_and_named_in_brackets(
    connections: list[tuple[str, int]],
) -> None:
    try:
        server = OriginServer(host="::1")
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    try:
        with fetch(server.url("/echo-headers"), settings()) as download:
            headers = json.loads(download.file.read())
    finally:
        server.stop()
    assert headers["Host"] == f"[::1]:{server.port}"
    assert connections == [("::1", server.port)]


def test_a_non_ascii_path_is_percent_encoded(origin: OriginServer) -> None:
    with fetch(origin.url("/echo-headers?name=\u00e9t\u00e9"), settings()) as download:
        assert (
            json.loads(download.file.read())["X-Request-Target"]
            == "/echo-headers?name=%C3%A9t%C3%A9"
        )


def test_the_default_resolver_answers_for_a_numeric_host() -> None:
    assert resolve_host("127.0.0.1", 80) == ["127.0.0.1"]


# --- URLs that are refused before anything is resolved -------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "gopher://example.com/",
        "ftp://example.com/image.png",
        "data:image/png;base64,AAAA",
        "/image.png",
        "image.png",
        "//example.com/image.png",
        "http:///image.png",
        "http:image.png",
        "",
        "http://user:pass@example.com/",
        "http://user@example.com/",
        "http://@example.com/",
        "http://example.com\\@evil.test/",
        " http://example.com/",
        "http://exa mple.com/",
        "http://example.com/\nHost: evil.test",
        "http://example.com/\r\n",
        "http://exa\tmple.com/",
        "http://example.com/\x00",
        "http://example.com:0/",
        "http://example.com:99999/",
        "http://example.com:port/",
        "http://[not-an-address]/",
        "http://[fe80::1%25eth0]/",
        "http://1.2.3.4.5/",
        "http://256.0.0.1/",
        "http://09.0.0.1/",
        "http://example..com/",
        "http://-example.com/",
        "http://exa%6dple.com/",
    ],
)
def test_refuses_urls_that_are_not_plain_absolute_http(
    url: str, connections: list[tuple[str, int]]
) -> None:
    with pytest.raises(InvalidUrl) as caught:
        fetch(url, GUARDED, resolver=NAMES)
    assert caught.value.status == 400
    assert_one_clear_sentence(caught.value)
    assert connections == []


def test_credentials_are_named_as_the_reason() -> None:
    with pytest.raises(InvalidUrl, match="credentials"):
        fetch("http://user:pass@example.com/", GUARDED, resolver=NAMES)


# --- the address guard --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://127.8.9.10:8080/", "127.8.9.10 is a loopback address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://[::ffff:7f00:1]/", "127.0.0.1, a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "127.0.0.1, a loopback address"),
        ("http://2130706433/", "127.0.0.1 is a loopback address"),
        ("http://0177.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://0x7f.1/", "127.0.0.1 is a loopback address"),
        ("http://0x7f000001/", "127.0.0.1 is a loopback address"),
        ("http://127.1/", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local"),
        ("http://0251.0376.0251.0376/", "169.254.169.254 is a link-local"),
        ("https://[fe80::1]/", "fe80::1 is a link-local"),
        ("http://10.1.2.3/", "10.1.2.3 is a private address"),
        ("http://192.168.0.1/", "192.168.0.1 is a private address"),
        ("http://172.16.0.1/", "172.16.0.1 is a private address"),
        ("http://100.64.0.1/", "100.64.0.1 is a shared"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://[::]/", ":: is an unspecified address"),
        ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
        ("http://[ff02::1]/", "ff02::1 is a multicast address"),
        ("http://240.0.0.1/", "240.0.0.1 is a"),
        ("http://255.255.255.255/", "255.255.255.255 is a"),
        ("http://[fd00::1]/", "fd00::1 is a private address"),
        ("http://[2002:a9fe:a9fe::1]/", "169.254.169.254, a link-local"),
        ("http://[64:ff9b::7f00:1]/", "127.0.0.1, a loopback address"),
        ("http://evil.test/", "evil.test resolves to 10.0.0.5, which is a private address"),
        ("http://meta.test/", "meta.test resolves to 169.254.169.254, which is a link-local"),
        ("http://v6.test/", "v6.test resolves to fd00::1, which is a private address"),
        ("http://mapped.test/", "which is a form of 127.0.0.1, a loopback address"),
        ("http://nat64.test/", "which is a form of 169.254.169.254, a link-local"),
        ("http://shared.test/", "100.64.0.1, which is a shared"),
        ("https://loop.test/", "loop.test resolves to 127.0.0.1, which is a loopback"),
        ("http://mixed.test/", "mixed.test resolves to 127.0.0.1"),
    ],
)
def test_refuses_non_public_addresses_without_connecting(
    url: str, shown: str, connections: list[tuple[str, int]]
) -> None:
    with pytest.raises(AddressRefused) as caught:
        fetch(url, GUARDED, resolver=NAMES)
    assert caught.value.status == 403
    assert shown in caught.value.message
    assert_one_clear_sentence(caught.value)
    assert connections == []


def test_one_refused_address_among_several_refuses_the_host(
    loopback_is_public: None, origin: OriginServer, connections: list[tuple[str, int]]
) -> None:
    with pytest.raises(AddressRefused, match=re.escape("10.0.0.5")):
        fetch(origin.url("/image", host="mixed.test"), GUARDED, resolver=NAMES)
    assert connections == []


def test_allow_private_networks_lifts_the_guard(origin: OriginServer) -> None:
    with fetch(origin.url("/image"), settings(private=True)) as download:
        assert download.size == len(IMAGE)


def test_numeric_hosts_mean_what_inet_aton_says(
    origin: OriginServer, connections: list[tuple[str, int]]
) -> None:
    """Decimal, octal and hex IPv4 forms are normalised, then checked and dialled as such."""
    for host in ("2130706433", "0177.0.0.1", "0x7f.1", "127.1"):
        with fetch(origin.url("/image", host=host), settings()) as download:
            assert download.size == len(IMAGE)
    assert connections == [("127.0.0.1", origin.port)] * 4


def test_an_unresolvable_host_is_an_origin_failure(connections: list[tuple[str, int]]) -> None:
    with pytest.raises(OriginFailed, match="could not be resolved") as caught:
        fetch("http://nowhere.test/", GUARDED, resolver=NAMES)
    assert_one_clear_sentence(caught.value)
    assert connections == []


@pytest.mark.timeout(20)
def test_a_hanging_resolver_is_given_up_on() -> None:
    release = threading.Event()

    def resolver(host: str, port: int) -> list[str]:
        release.wait(10)
        return ["127.0.0.1"]

    try:
        with pytest.raises(OriginFailed, match="took longer than"):
            fetch("http://slow-dns.test/", settings(timeout=0.3), resolver=resolver)
    finally:
        release.set()


# --- redirects ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_follows_a_redirect(origin: OriginServer, status: int) -> None:
    url = origin.url(f"/redirect?status={status}&to={origin.url('/image')}")
    with fetch(url, settings()) as download:
        assert download.sha256 == hashlib.sha256(IMAGE).hexdigest()


def test_follows_five_relative_redirects(origin: OriginServer) -> None:
    with fetch(origin.url("/chain?n=5"), settings()) as download:
        assert download.size == len(IMAGE)


def test_a_sixth_redirect_is_one_too_many(origin: OriginServer) -> None:
    with pytest.raises(OriginFailed, match="more than 5 times") as caught:
        fetch(origin.url("/chain?n=6"), settings())
    assert_one_clear_sentence(caught.value)


def test_a_redirect_loop_ends(origin: OriginServer, connections: list[tuple[str, int]]) -> None:
    with pytest.raises(OriginFailed, match="redirected more than"):
        fetch(origin.url("/loop"), settings())
    assert len(connections) == 6


def test_a_redirect_without_location_fails(origin: OriginServer) -> None:
    with pytest.raises(OriginFailed, match="no Location"):
        fetch(origin.url("/nowhere"), settings())


def test_guarded_hop_to_the_origin_itself_is_followed(
    loopback_is_public: None, origin: OriginServer, connections: list[tuple[str, int]]
) -> None:
    url = origin.url(f"/redirect?to={origin.url('/image', host='loop.test')}", host="loop.test")
    with fetch(url, GUARDED, resolver=NAMES) as download:
        assert download.size == len(IMAGE)
    assert connections == [("127.0.0.1", origin.port)] * 2


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local"),
        ("http://meta.test/latest/meta-data/", "169.254.169.254, which is a link-local"),
        ("http://evil.test/", "10.0.0.5, which is a private address"),
        ("http://[fd00::1]/", "fd00::1 is a private address"),
        ("http://127.0.0.2:{port}/image", "127.0.0.2 is a loopback address"),
        ("http://[::1]:{port}/image", "::1 is a loopback address"),
        ("http://0x7f000002:{port}/image", "127.0.0.2 is a loopback address"),
    ],
)
def test_every_redirect_hop_is_checked_again(
    loopback_is_public: None,
    origin: OriginServer,
    connections: list[tuple[str, int]],
    target: str,
    shown: str,
) -> None:
    """The first hop is allowed by the seam; the next one must be refused before dialling."""
    url = origin.url(f"/redirect?to={target.format(port=origin.port)}")
    with pytest.raises(AddressRefused) as caught:
        fetch(url, GUARDED, resolver=NAMES)
    assert shown in caught.value.message
    assert connections == [("127.0.0.1", origin.port)]


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "http://user:pw@loop.test/"]
)
def test_a_redirect_to_an_unsupported_url_is_refused(
    origin: OriginServer, connections: list[tuple[str, int]], target: str
) -> None:
    with pytest.raises(InvalidUrl, match="redirect target") as caught:
        fetch(origin.url(f"/redirect?to={target}"), settings(), resolver=NAMES)
    assert_one_clear_sentence(caught.value)
    assert connections == [("127.0.0.1", origin.port)]


# --- origin failures and time limits ----------------------------------------------


@pytest.mark.parametrize("code", [404, 500, 503])
def test_an_error_status_names_the_status(origin: OriginServer, code: int) -> None:
    with pytest.raises(OriginFailed, match=f"HTTP status {code}") as caught:
        fetch(origin.url(f"/status?code={code}"), settings())
    assert caught.value.status == 502
    assert_one_clear_sentence(caught.value)


def test_a_closed_port_is_an_origin_failure() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(OriginFailed, match="Could not connect") as caught:
        fetch(f"http://127.0.0.1:{port}/", settings())
    assert_one_clear_sentence(caught.value)


def test_a_body_shorter_than_its_content_length_is_truncated(origin: OriginServer) -> None:
    with pytest.raises(OriginFailed, match="fewer bytes than it announced") as caught:
        fetch(origin.url("/liar"), settings())
    assert_one_clear_sentence(caught.value)


@pytest.mark.timeout(20)
def test_an_origin_that_never_answers_times_out(origin: OriginServer) -> None:
    with pytest.raises(
        OriginFailed, match=re.escape("did not answer within 0.5 seconds")
    ) as caught:
        fetch(origin.url("/hang"), settings(timeout=0.5))
    assert_one_clear_sentence(caught.value)


@pytest.mark.timeout(20)
def test_a_slow_drip_body_hits_the_overall_deadline(origin: OriginServer) -> None:
    """Each byte comes well within the read timeout; only the whole-download deadline stops it."""
    with pytest.raises(OriginFailed, match=re.escape("did not finish within 1.5 seconds")):
        fetch(origin.url("/drip?size=1000&interval=0.1"), settings(timeout=0.5))


@pytest.mark.timeout(20)
def test_slow_drip_headers_hit_the_overall_deadline(origin: OriginServer) -> None:
    with pytest.raises(OriginFailed, match=re.escape("did not finish within 1.5 seconds")):
        fetch(origin.url("/drip-headers?interval=0.1"), settings(timeout=0.5))


# --- size limits --------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_an_announced_oversize_body_is_refused_before_reading(origin: OriginServer) -> None:
    """The origin announces 10 MB and sends nothing: waiting for the body would time out."""
    with pytest.raises(TooLarge) as caught:
        fetch(origin.url(f"/announce?size={10 * MB}"), settings(max_bytes=MB, timeout=5))
    assert caught.value.status == 413
    assert str(MB) in caught.value.message
    assert_one_clear_sentence(caught.value)


@pytest.mark.parametrize("path", ["/big", "/chunked"])
def test_a_body_exactly_at_the_limit_is_fine(origin: OriginServer, path: str) -> None:
    with fetch(origin.url(f"{path}?size={MB}"), settings(max_bytes=MB)) as download:
        assert download.size == MB
        assert download.sha256 == pattern_sha256(MB)


def test_a_chunked_body_over_the_limit_is_stopped(origin: OriginServer) -> None:
    with pytest.raises(TooLarge) as caught:
        fetch(origin.url(f"/chunked?size={5 * MB}"), settings(max_bytes=MB))
    assert_one_clear_sentence(caught.value)


def test_one_byte_over_the_limit_is_too_large(origin: OriginServer) -> None:
    with pytest.raises(TooLarge):
        fetch(origin.url(f"/chunked?size={MB + 1}"), settings(max_bytes=MB))


def test_a_compressed_body_counts_at_its_decoded_size(origin: OriginServer) -> None:
    with fetch(origin.url("/gzip?size=1000"), settings()) as download:
        assert download.sha256 == hashlib.sha256(bytes(1000)).hexdigest()
    with pytest.raises(TooLarge):
        fetch(origin.url(f"/gzip?size={20 * MB}"), settings(max_bytes=MB))


# --- https --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OriginServer, Path]]:
    pytest.importorskip("cryptography")
    context, ca_file = tls_context(tmp_path_factory.mktemp("tls"), "secure.test")
    server = OriginServer(context)
    yield server, ca_file
    server.stop()


def test_https_verifies_the_original_name_on_the_pinned_address(
    tls_origin: tuple[OriginServer, Path],
    monkeypatch: pytest.MonkeyPatch,
    connections: list[tuple[str, int]],
) -> None:
    server, ca_file = tls_origin
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    resolver = stub_resolver({"secure.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    url = server.url("/echo-headers", host="secure.test")
    with fetch(url, settings(), resolver=resolver) as download:
        assert json.loads(download.file.read())["Host"] == f"secure.test:{server.port}"
    with pytest.raises(OriginFailed, match=re.escape("certificate of other.test")) as caught:
        fetch(server.url("/image", host="other.test"), settings(), resolver=resolver)
    assert_one_clear_sentence(caught.value)
    assert connections == [("127.0.0.1", server.port)] * 2


def test_https_refuses_an_unknown_authority(tls_origin: tuple[OriginServer, Path]) -> None:
    server, _ = tls_origin
    resolver = stub_resolver({"secure.test": ["127.0.0.1"]})
    with pytest.raises(OriginFailed, match="could not be verified"):
        fetch(server.url("/image", host="secure.test"), settings(), resolver=resolver)
