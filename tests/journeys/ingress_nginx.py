"""Ingress objects to nginx.conf, the way ingress-nginx's template turns them into servers.

What is translated, after ingress-nginx (docs: ingress-path-matching, annotations):

- one `server` per host over every Ingress; a rule without a host joins the default server;
- `Exact` is `location = /p`; `Prefix` /p is `location /p/` plus `location = /p` (`/` stays `/`);
  `ImplementationSpecific` is a plain prefix location;
- `use-regex` (or `rewrite-target`) on ANY Ingress of a host makes EVERY path of that host a
  case-insensitive regex location `~* "^<path>"` (Exact stays exact), longest path first;
- `rewrite-target` is `rewrite "(?i)<path>" <target> break;`, capture groups and all;
- a host listed under an Ingress's `tls:` listens for TLS with its Secret's certificate, and
  HTTP to any location of that host answers 308 to https unless the location's Ingress says
  `ssl-redirect: "false"` or the path is an ACME challenge (`no-tls-redirect-locations`);
  `force-ssl-redirect` redirects even without TLS;
- `proxy-read-timeout`, `proxy-send-timeout` and `proxy-body-size`;
- a host without a `/` location, and any unknown host, get the default backend's 404.

Backends are named Services; the caller maps each name to the loopback address standing in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "nginx.ingress.kubernetes.io/"
DEFAULT_SERVER = "_"
# The controller's default no-tls-redirect-locations, so HTTP-01 challenges answer over HTTP.
NO_TLS_REDIRECT = "/.well-known/acme-challenge"


@dataclass(frozen=True)
class Certificate:
    """A certificate chain and its key, in PEM files: what a kubernetes.io/tls Secret holds."""

    chain: Path
    key: Path


@dataclass(frozen=True)
class Listeners:
    """Where nginx listens for plain HTTP and for TLS, on loopback."""

    http_port: int
    https_port: int


@dataclass
class _Location:
    path: str
    path_type: str
    backend: str
    annotations: Mapping[str, str]


@dataclass
class _Server:
    host: str
    locations: list[_Location] = field(default_factory=list)
    certificate: Certificate | None = None
    regex: bool = False


def _annotation(annotations: Mapping[str, str], name: str, default: str = "") -> str:
    return str(annotations.get(PREFIX + name, default))


def _servers(
    ingresses: list[dict[str, Any]], certificates: Mapping[str, Certificate]
) -> dict[str, _Server]:
    servers: dict[str, _Server] = {}
    for ingress in ingresses:
        annotations = ingress["metadata"].get("annotations") or {}
        spec = ingress["spec"]
        tls_hosts = {
            host: entry["secretName"] for entry in spec.get("tls") or [] for host in entry["hosts"]
        }
        regex = (
            _annotation(annotations, "use-regex") == "true"
            or _annotation(annotations, "rewrite-target") != ""
        )
        for rule in spec.get("rules") or []:
            host = rule.get("host") or DEFAULT_SERVER
            server = servers.setdefault(host, _Server(host))
            # use-regex is host-wide in ingress-nginx: it leaks to every Ingress of the host.
            server.regex = server.regex or regex
            if host in tls_hosts:
                secret = tls_hosts[host]
                if secret not in certificates:
                    raise ValueError(f"no certificate stands in for Secret {secret}")
                server.certificate = certificates[secret]
            for path in rule["http"]["paths"]:
                server.locations.append(
                    _Location(
                        path=path.get("path") or "/",
                        path_type=path["pathType"],
                        backend=path["backend"]["service"]["name"],
                        annotations=annotations,
                    )
                )
    return servers


def _matchers(location: _Location, regex: bool) -> list[str]:
    path = location.path
    if location.path_type == "Exact":
        return [f"= {path}"]
    if regex:
        return [f'~* "^{path}"']
    if location.path_type == "Prefix" and path != "/":
        trimmed = path.rstrip("/")
        return [f"{trimmed}/", f"= {trimmed}"]
    return [path]


def _redirects(location: _Location, tls: bool) -> bool:
    if location.path.startswith(NO_TLS_REDIRECT):
        return False
    annotations = location.annotations
    if _annotation(annotations, "force-ssl-redirect") == "true":
        return True
    return tls and _annotation(annotations, "ssl-redirect", "true") == "true"


def _location_block(
    matcher: str, location: _Location, upstreams: Mapping[str, str], tls: bool
) -> str:
    if location.backend not in upstreams:
        raise ValueError(f"no loopback server stands in for Service {location.backend}")
    annotations = location.annotations
    lines = [f"        location {matcher} {{"]
    if _redirects(location, tls):
        lines.append('            if ($scheme = "http") { return 308 https://$host$request_uri; }')
    target = _annotation(annotations, "rewrite-target")
    if target and target != location.path:
        lines.append(f'            rewrite "(?i){location.path}" {target} break;')
    lines += [
        f"            client_max_body_size {_annotation(annotations, 'proxy-body-size', '1m')};",
        f"            proxy_read_timeout {_annotation(annotations, 'proxy-read-timeout', '60')}s;",
        f"            proxy_send_timeout {_annotation(annotations, 'proxy-send-timeout', '60')}s;",
        "            proxy_http_version 1.1;",
        "            proxy_set_header Host $host;",
        "            proxy_set_header X-Forwarded-For $remote_addr;",
        "            proxy_set_header X-Forwarded-Proto $scheme;",
        f"            proxy_pass http://{upstreams[location.backend]};",
        "        }",
    ]
    return "\n".join(lines)


def _server_block(server: _Server, listeners: Listeners, upstreams: Mapping[str, str]) -> str:
    default = " default_server" if server.host == DEFAULT_SERVER else ""
    lines = ["    server {", f"        server_name {server.host};"]
    lines.append(f"        listen 127.0.0.1:{listeners.http_port}{default};")
    if server.certificate is not None:
        lines += [
            f"        listen 127.0.0.1:{listeners.https_port} ssl{default};",
            f"        ssl_certificate {server.certificate.chain};",
            f"        ssl_certificate_key {server.certificate.key};",
        ]
    # ingress-nginx orders locations by path length, longest first: regexes match in order.
    ordered = sorted(server.locations, key=lambda location: len(location.path), reverse=True)
    blocks = [
        _location_block(matcher, location, upstreams, server.certificate is not None)
        for location in ordered
        for matcher in _matchers(location, server.regex)
    ]
    if not any(location.path == "/" and location.path_type != "Exact" for location in ordered):
        # The default backend's location follows the controller's global ssl-redirect (on).
        redirect = (
            'if ($scheme = "http") { return 308 https://$host$request_uri; } '
            if server.certificate is not None
            else ""
        )
        blocks.append(f"        location / {{ {redirect}return 404; }}")
    return "\n".join([*lines, *blocks, "    }"])


def nginx_conf(
    ingresses: list[dict[str, Any]],
    *,
    upstreams: Mapping[str, str],
    certificates: Mapping[str, Certificate],
    listeners: Listeners,
    runtime_dir: Path,
) -> str:
    """A whole nginx.conf serving `ingresses`; `upstreams` maps Service names to host:port."""
    servers = _servers(ingresses, certificates)
    blocks = [_server_block(server, listeners, upstreams) for server in servers.values()]
    if DEFAULT_SERVER not in servers:
        blocks.append(
            "    server {\n"
            f"        listen 127.0.0.1:{listeners.http_port} default_server;\n"
            "        location / { return 404; }\n"
            "    }"
        )
    temp_paths = "\n".join(
        f"    {kind}_temp_path {runtime_dir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
pid {runtime_dir / "nginx.pid"};
error_log {runtime_dir / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    access_log {runtime_dir / "access.log"};
{temp_paths}
    proxy_max_temp_file_size 0;
    server_names_hash_bucket_size 128;
    ssl_protocols TLSv1.2 TLSv1.3;
{chr(10).join(blocks)}
}}
"""
