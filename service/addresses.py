"""Which IP addresses the downloader may connect to, and how URL hosts become addresses."""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
# Special-purpose blocks (IANA registries) that older Pythons' is_global still lets through.
_SPECIAL_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in ("0.0.0.0/8", "192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15", "240.0.0.0/4")
)
_SPECIAL_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in ("::/96", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fec0::/10")
)
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


def refusal_reason(address: IPAddress) -> str | None:
    """Why the downloader must not connect to `address` (e.g. "a loopback address"), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = _ipv4_reason(embedded)
            return f"a form of {embedded}, {inner}" if inner else None
        return _ipv6_reason(address)
    return _ipv4_reason(address)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # These forms make the packet go to the embedded IPv4 address, so that one decides.
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _ipv4_reason(address: ipaddress.IPv4Address) -> str | None:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or any(address in net for net in _SPECIAL_V4):
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


def _ipv6_reason(address: ipaddress.IPv6Address) -> str | None:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_site_local:
        return "a site-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or any(address in net for net in _SPECIAL_V6):
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a numeric host such as "2130706433" or "0x7f.1" means, as inet_aton reads it.

    Returns None when the host is a name; raises ValueError when it looks numeric (its last
    label is a number, as the URL standard puts it) but is no valid address.
    """
    labels = host.removesuffix(".").split(".")
    if not _NUMERIC_LABEL.fullmatch(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{host} is not a valid IPv4 address")
    try:
        numbers = [_inet_aton_number(label) for label in labels]
    except ValueError:  # an octal label with an 8 or 9 in it
        raise ValueError(f"{host} is not a valid IPv4 address") from None
    *leading, last = numbers
    if any(n > 0xFF for n in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host} is not a valid IPv4 address")
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _inet_aton_number(label: str) -> int:
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8)
    return int(label)
