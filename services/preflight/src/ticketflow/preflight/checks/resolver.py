"""Name resolution behind a protocol, so tests decide where a name points."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import Protocol

from ticketflow.preflight.checks.policy import IPAddress


class NameNotResolvedError(Exception):
    pass


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """All addresses of `host`; raises NameNotResolvedError when there are none."""
        ...


class SystemResolver:
    """The operating system's resolver, via the event loop's getaddrinfo."""

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
