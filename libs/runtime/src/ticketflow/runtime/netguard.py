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


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a customer-given address must not be contacted, or None when it is public."""
    a = _unmapped(address)
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
        a = _unmapped(address)
        if any(a.version == net.version and a in net for net in self.allowed_networks):
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
