"""A misbehaving-on-request HTTP(S) origin on 127.0.0.1 for the downloader's tests."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import http.server
import json
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
BLOCK = bytes(range(256)) * 256  # 64 KiB
SERVER_PEM = "server.pem"  # what tls_context writes: the certificate, then its key


def pattern(size: int) -> Iterator[bytes]:
    """`size` bytes of a fixed pattern, in blocks; the test side hashes the same stream."""
    while size > 0:
        block = BLOCK[: min(size, len(BLOCK))]
        size -= len(block)
        yield block


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for block in pattern(size):
        digest.update(block)
    return digest.hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OriginServer

    routes: ClassVar[dict[str, str]] = {
        "/image": "image",
        "/big": "big",
        "/chunked": "chunked",
        "/announce": "announce",
        "/redirect": "redirect",
        "/chain": "chain",
        "/loop": "loop",
        "/nowhere": "nowhere",
        "/drip": "drip",
        "/drip-headers": "drip_headers",
        "/liar": "liar",
        "/hang": "hang",
        "/status": "status",
        "/gzip": "gzip",
        "/echo-headers": "echo_headers",
        "/early-hints": "early_hints",
    }

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        route = self.routes.get(parts.path)
        try:
            if route is None:
                self.send_body(404, b"not found")
            else:
                getattr(self, f"serve_{route}")()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def number(self, name: str, default: float) -> float:
        return float(self.query.get(name, default))

    def send_body(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def serve_image(self) -> None:
        self.send_body(200, IMAGE, Content_Type="image/png")

    def serve_big(self) -> None:
        size = int(self.number("size", 0))
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        for block in pattern(size):
            self.wfile.write(block)

    def serve_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for block in pattern(int(self.number("size", 0))):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
        self.wfile.write(b"0\r\n\r\n")

    def serve_announce(self) -> None:
        """Announces a body and never sends it: a client that waits for it times out."""
        self.send_response(200)
        self.send_header("Content-Length", str(int(self.number("size", 0))))
        self.end_headers()
        self.wfile.flush()
        self.server.stopping.wait(30)
        self.close_connection = True

    def serve_redirect(self) -> None:
        status = int(self.number("status", 302))
        self.send_body(status, b"", Location=self.query["to"])

    def serve_chain(self) -> None:
        left = int(self.number("n", 0))
        if left == 0:
            self.serve_image()
        else:
            # Relative, with a "./" the client must resolve against the current URL.
            self.send_body(302, b"", Location=f"./chain?n={left - 1}")

    def serve_loop(self) -> None:
        self.send_body(302, b"", Location="/loop")

    def serve_nowhere(self) -> None:
        self.send_body(302, b"")

    def serve_drip(self) -> None:
        size = int(self.number("size", 1000))
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        for _ in range(size):
            self.wfile.write(b"x")
            self.wfile.flush()
            if self.server.stopping.wait(self.number("interval", 0.1)):
                break
        self.close_connection = True

    def serve_drip_headers(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not self.server.stopping.wait(self.number("interval", 0.1)):
            self.wfile.write(b"x")
            self.wfile.flush()
        self.close_connection = True

    def serve_liar(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"only ten b")
        self.close_connection = True

    def serve_hang(self) -> None:
        self.server.stopping.wait(30)
        self.close_connection = True

    def serve_status(self) -> None:
        self.send_body(int(self.number("code", 500)), b"origin trouble")

    def serve_gzip(self) -> None:
        # Sent compressed although the client asked for identity, as some servers do.
        body = gzip.compress(bytes(int(self.number("size", 0))))
        self.send_body(200, body, Content_Encoding="gzip")

    def serve_early_hints(self) -> None:
        # Informational answers before the real one, as CDNs send 103 Early Hints.
        for _ in range(int(self.number("count", 1))):
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
        self.serve_image()

    def serve_echo_headers(self) -> None:
        echoed = {**dict(self.headers.items()), "X-Request-Target": self.path}
        self.send_body(200, json.dumps(echoed).encode())


class OriginServer(http.server.ThreadingHTTPServer):
    """The origin; `stop()` ends it and every request it is still serving."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.stopping = threading.Event()
        self.context = context
        self.host = host
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, 0), _Handler)
        self.port = int(self.server_address[1])
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn, a reverse DNS lookup the tests must not make.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.host
        self.server_port = int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        sock, address = super().get_request()
        if self.context is not None:
            sock.settimeout(5)
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        try:
            if isinstance(request, ssl.SSLSocket):
                request.do_handshake()
            super().finish_request(request, client_address)
        except (ssl.SSLError, OSError):
            pass

    def url(self, path: str, host: str | None = None) -> str:
        scheme = "https" if self.context is not None else "http"
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join(10)


def tls_context(directory: Path, hostname: str, *also: str) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for `hostname` (and `also`), and its CA's file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fetch test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in (hostname, *also)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain_file = directory / SERVER_PEM
    chain_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file)
    return context, ca_file
