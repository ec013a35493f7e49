"""Which addresses an origin may connect to (the SSRF guard).

The check runs twice (`origins.http1`): on the addresses a name resolves to, and again on the
exact address each connection is about to be made to. The second check is the one that cannot
be bypassed: it also sees IP literals (which skip the resolver) and whatever a cache or a
rebinding DNS server handed over, so a name that resolves to a private address, or changes
its answer between two lookups, is refused as well.
"""

from __future__ import annotations

import ipaddress

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class BlockedAddressError(OSError):
    """The origin host resolves to an address pixelport may not reach."""


def blocked_reason(address: str) -> str | None:
    """Why connecting to `address` is refused, or None when it is a public address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = blocked_reason(str(embedded))
            return f"{ip} embeds {embedded}: {inner}" if inner else None
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address (cloud metadata lives here)"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_private or not ip.is_global or ip.is_reserved:
        return f"{ip} is a private or reserved address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _NAT64_LOCAL or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_literal_host(host: str) -> None:
    """Refuse a URL whose host is a forbidden IP literal (those skip the resolver)."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return
    reason = blocked_reason(host.strip("[]"))
    if reason:
        raise BlockedAddressError(f"{host} is a forbidden address: {reason}")
