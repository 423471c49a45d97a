"""Which addresses a service may contact when the address comes from a customer (SSRF guard), and name
resolution behind a protocol so tests decide where a name points.

Preflight fetches the portal URLs customers give; intake asks a Bitrix24 portal whether a user is an
administrator (REST `user.admin`). Both allow only globally routable unicast addresses, judged after
resolution, and connect to the address they judged. Their tests run real HTTPS servers on 127.0.0.1:
the loopback allowance refuses to exist outside a test run (`AddressPolicy.test_run`)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")


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


def in_pytest_process() -> bool:
    return "pytest" in sys.modules


@dataclass(frozen=True)
class AddressPolicy:
    """Decides whether an address may be contacted. The default instance is the production rule;
    `allow_loopback` (127.0.0.0/8, for the tests' local servers) cannot be created outside a test run."""

    allow_loopback: bool = False

    def __post_init__(self) -> None:
        if self.allow_loopback and not self.test_run():
            raise RuntimeError("the loopback allowance exists for tests only")

    @classmethod
    def loopback_allowed_for_tests(cls) -> AddressPolicy:
        """Public addresses plus 127.0.0.0/8, for the tests' local HTTPS servers. Nothing else."""
        return cls(allow_loopback=True)

    @staticmethod
    def test_run() -> bool:
        """Where the loopback allowance may exist: the pytest process itself (a subclass may widen it
        to the processes a test starts)."""
        return in_pytest_process()

    def refusal(self, address: IPAddress) -> str | None:
        """The reason `address` is refused, or None when it may be contacted."""
        a = _unmapped(address)
        if self.allow_loopback and isinstance(a, ipaddress.IPv4Address) and a in _LOOPBACK_V4:
            return None
        return forbidden_reason(address)


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
