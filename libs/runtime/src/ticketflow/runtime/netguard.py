"""Which addresses a service may contact when the address comes from a customer (SSRF guard), and name
resolution behind a protocol so tests decide where a name points.

Preflight fetches the portal URLs customers give; intake asks a Bitrix24 portal whether a user is an
administrator (REST `user.admin`). Both allow only globally routable unicast addresses, judged after
resolution, and connect to the address they judged. A deployment whose portals sit on an internal
network names it in `allowed_networks` (a setting, empty by default); the tests, which run real HTTPS
servers on 127.0.0.1, allow 127.0.0.0/8 the same way."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _unmapped(address: IPAddress) -> IPAddress:
    # Python 3.11 judges ::ffff:127.0.0.1 as not loopback; judge the embedded IPv4 address instead.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# IPv6 ranges that carry an IPv4 address inside (a packet to them reaches that IPv4 address through a
# translator or relay): the embedded address is what must be judged. Python 3.11 judges none of them.
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # RFC 3056: 2002:AABB:CCDD::/48 is AA.BB.CC.DD
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits
# Special-purpose blocks Python 3.11 does not flag (or calls global), refused explicitly: tunnels and
# local-use translators nobody's portal is behind, deprecated site-local addresses (RFC 3879), IETF
# protocol assignments and the old 6to4 relay anycast, and IPv6 documentation space (RFC 9637). The
# property test checks the whole rule against the IANA registries written out independently.
_REFUSED = (
    (ipaddress.ip_network("2001::/32"), "teredo"),  # RFC 4380: the client address is hidden in it
    (ipaddress.ip_network("64:ff9b:1::/48"), "nat64_local"),  # RFC 8215: local-use translation
    (ipaddress.ip_network("fec0::/10"), "site_local"),
    (ipaddress.ip_network("3fff::/20"), "documentation"),
    (ipaddress.ip_network("192.0.0.0/24"), "ietf_protocol"),  # RFC 6890
    (ipaddress.ip_network("192.88.99.0/24"), "6to4_relay"),  # RFC 7526: deprecated anycast
)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address maps, translates or tunnels to (mapped, 6to4, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a customer-given address must not be contacted, or None when it is public."""
    inner = embedded_ipv4(address)
    if inner is not None and not (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped):
        reason = _judged(inner)
        return None if reason is None else f"embeds {inner} ({reason})"
    return _judged(_unmapped(address))


def _judged(a: IPAddress) -> str | None:
    for network, reason in _REFUSED:
        if a.version == network.version and a in network:
            return reason
    if a.is_loopback:
        return "loopback"
    if a.is_unspecified:
        return "unspecified"
    if a.is_link_local:
        return "link_local"
    if a.is_multicast:
        return "multicast"
    if a.is_private:
        return "private"
    if a.is_reserved:
        return "reserved"
    if not a.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT): neither private nor reachable
        return "not_global"
    return None


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AddressPolicy:
    """Decides whether an address may be contacted: public unicast addresses, plus `allowed_networks`."""

    allowed_networks: tuple[IPNetwork, ...] = ()

    def refusal(self, address: IPAddress) -> str | None:
        """The reason `address` is refused, or None when it may be contacted."""
        a = embedded_ipv4(address) or address
        if any(x.version == net.version and x in net for x in {address, a} for net in self.allowed_networks):
            return None
        return forbidden_reason(address)


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`"10.20.0.0/16, 127.0.0.0/8"` -> networks (a setting's value); raises ValueError naming a bad one."""
    return tuple(ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip())


class NameNotResolvedError(Exception):
    pass


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """All addresses of `host`; raises NameNotResolvedError when there are none."""
        ...


class SystemResolver:
    """The operating system's resolver, via the event loop's getaddrinfo (never blocks the loop)."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise NameNotResolvedError(str(exc)) from exc
        addresses: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            # Drop an IPv6 zone id ("fe80::1%eth0"); the policy refuses link-local anyway.
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise NameNotResolvedError(f"{host} has no addresses")
        return addresses
