"""The SSRF guard in tests: name resolution the test decides (no real DNS), and the address policy of
tests that run real servers on 127.0.0.1 (public addresses plus IPv4 loopback, built with the same
`allowed_networks` a deployment sets for an internal network)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from ticketflow.runtime.netguard import AddressPolicy, IPAddress, NameNotResolvedError

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
LOOPBACK_ALLOWED = AddressPolicy(allowed_networks=LOOPBACK)


class StaticResolver:
    """Names resolve only to what the test says (one address or several); any other name does not
    resolve. `calls` counts lookups per name."""

    def __init__(self, table: Mapping[str, str | Sequence[str]]) -> None:
        self.table = {
            name.lower(): [answer] if isinstance(answer, str) else list(answer) for name, answer in table.items()
        }
        self.calls: dict[str, int] = {}

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        self.calls[host] = self.calls.get(host, 0) + 1
        answer = self.table.get(host.lower())
        if not answer:
            raise NameNotResolvedError(f"NXDOMAIN {host}")
        return [ipaddress.ip_address(a) for a in answer]
