"""Kubernetes value kinds of the stack config: quantities, DNS names, labels, image references.

Each is a typed string with the rule the API server or the container runtime applies, so a
value that would be refused at deploy time is refused, in one line, at preview.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from service.fields import INT32_MAX, Integer, Text, checked, matching

_SUFFIX = r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]{1,3})?"
_QUANTITY = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)" + _SUFFIX)
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_PATH = r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
_IMAGE = rf"[a-z0-9]([-a-z0-9.:]*[a-z0-9])?/{_PATH}|{_PATH}"


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity such as `500m` or `5Gi`; ValueError if malformed."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(text)
    number, suffix = Decimal(match.group(1)), match.group(3) or ""
    if suffix.endswith("i"):
        return number * 1024 ** ("KMGTPE".index(suffix[0]) + 1)
    power = int(suffix[1:]) if suffix[:1] in ("e", "E") else _DECIMAL.get(suffix, 0)
    return number * Decimal(10) ** power


def is_ip(text: str) -> bool:
    """Whether `text` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_cidr(text: str) -> bool:
    """Whether `text` is a network such as 10.0.0.0/24, host bits zero."""
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError:
        return False
    return True


def labels_fit(name: str) -> bool:
    """A DNS name's length rules: 253 in all, 63 between dots."""
    return len(name) <= 253 and all(len(label) <= 63 for label in name.split("."))


def host_port(endpoint: str) -> tuple[str, int]:
    """The host and port of `host:port` (`[v6]:port` too); port 0 where there is none."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() and len(port) <= 5 else 0


def _is_endpoint(endpoint: str) -> bool:
    host, port = host_port(endpoint)
    named = is_ip(host) or (re.fullmatch(SUBDOMAIN, host) is not None and labels_fit(host))
    return named and 1 <= port <= 65535


def is_label(key: str, value: str) -> bool:
    """A Kubernetes label: key [prefix/]name, name and value up to 63 of letters, digits, -_."""
    prefix, _, name = key.rpartition("/")
    good_prefix = not prefix or (re.fullmatch(SUBDOMAIN, prefix) is not None and labels_fit(prefix))
    return (
        0 < len(name) <= 63 >= len(value)
        and good_prefix
        and all(_LABEL.fullmatch(part) for part in (name, value))
    )


DnsLabel = Annotated[
    Text, matching(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "must be a DNS label such as images")
]
ObjectName = Annotated[
    Text,
    matching(SUBDOMAIN, "must be a Kubernetes object name (lowercase letters, digits, '-', '.')"),
    checked(labels_fit, "must have at most 253 characters"),
]
Hostname = Annotated[
    Text,
    checked(lambda text: not is_ip(text), "must be a DNS host name, not an IP address"),
    matching(r"(\*\.)?" + SUBDOMAIN, "must be a DNS host name such as api.example.com"),
    checked(labels_fit, "must have at most 253 characters, 63 between dots"),
]
Quantity = Annotated[Text, matching(_QUANTITY.pattern, "must be a quantity such as 500m or 5Gi")]
Replicas = Annotated[Integer, Field(ge=1, le=INT32_MAX)]
Cidr = Annotated[Text, checked(is_cidr, "must be a CIDR such as 10.0.0.0/24 (host bits zero)")]
RepositoryPath = Annotated[Text, matching(_PATH, "must be a lowercase path such as team/images")]
PinnedImage = Annotated[
    Text,
    matching(
        rf"({_IMAGE})(:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(@sha256:[a-f0-9]{{64}})?",
        "must be an image reference such as quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z",
    ),
    checked(
        lambda ref: ":" in ref.rsplit("/", 1)[-1] or "@" in ref, "must be pinned by tag or digest"
    ),
    checked(lambda ref: ":latest" not in ref, "must not use the tag latest"),
]
Endpoint = Annotated[Text, checked(_is_endpoint, "must be host:port, such as s3.example.com:9000")]
Labels = Annotated[
    dict[str, str],
    checked(
        lambda labels: all(is_label(key, value) for key, value in labels.items()),
        "must map label keys ([prefix/]name) to values, each name and value up to 63 of "
        "letters, digits, '-', '_' and '.'",
    ),
]
