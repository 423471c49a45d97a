"""The one way ticketflow talks HTTP to Bitrix24 (a portal's REST, the OAuth server): aiohttp, with the SSRF
guard in its resolver.

The address comes from a verified install (`Install.domain`) or from configuration (the OAuth server),
never from the request being handled; still, a portal is a customer's machine, so:
- HTTPS only, the system trust store (plus `ca_file`, for a deployment's internal CA), redirects never
  followed, no proxy from the environment, no cookies, the answer capped at `max_body` bytes;
- only the ports in `allowed_ports`;
- every name is resolved by `resolver` and every address judged by `policy` (ticketflow.runtime.netguard:
  public unicast, plus the networks a deployment allows) inside aiohttp's resolver hook, so the connection
  goes to the addresses that were judged (TLS SNI, certificate and Host still use the name): DNS rebinding
  has no second lookup to answer. A mixed answer (one bad address) refuses the name. IP literals, which
  aiohttp does not resolve, are judged before the request.
Connections are kept alive per host (aiohttp keys its pool by host, port and TLS settings), so a busy
portal costs one TLS handshake, not one per message."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ticketflow.bitrix24.errors import BadAnswer, ForbiddenAddress, Unavailable
from ticketflow.runtime.netguard import AddressPolicy, IPAddress, NameNotResolvedError, Resolver, SystemResolver


class _Refused(OSError):
    """Raised inside aiohttp's resolver hook; aiohttp wraps it in ClientConnectorDNSError."""


class _GuardedResolver(AbstractResolver):
    def __init__(self, resolver: Resolver, policy: AddressPolicy) -> None:
        self._resolver = resolver
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await self._resolver.resolve(host, port)
        except NameNotResolvedError as exc:
            raise OSError(f"{host} does not resolve: {exc}") from exc
        if not addresses:
            raise OSError(f"{host} has no addresses")
        for address in addresses:
            refusal = self._policy.refusal(address)
            if refusal is not None:
                raise _Refused(f"{host} resolves to {address} ({refusal})")
        return [
            {
                "hostname": host,
                "host": str(a),
                "port": port,
                "family": socket.AF_INET6 if a.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for a in addresses
        ]

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    document: Any  # the decoded JSON body


class GuardedHttp:
    def __init__(
        self,
        *,
        policy: AddressPolicy | None = None,
        allowed_ports: frozenset[int] = frozenset({443}),
        resolver: Resolver | None = None,
        ca_file: str | Path | None = None,
        timeout_s: float = 10.0,
        max_body: int = 1024 * 1024,
        max_per_host: int = 64,
    ) -> None:
        self.policy = policy or AddressPolicy()
        self.allowed_ports = allowed_ports
        self.timeout_s = timeout_s
        self.max_body = max_body
        self._resolver = resolver or SystemResolver()
        self._max_per_host = max_per_host
        self._ssl = ssl.create_default_context()
        if ca_file is not None:
            self._ssl.load_verify_locations(cafile=str(ca_file))
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=_GuardedResolver(self._resolver, self.policy), use_dns_cache=False, ssl=self._ssl,
                limit=256, limit_per_host=self._max_per_host, keepalive_timeout=30.0,
            )  # fmt: skip
            timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )
        return self._session

    def check_url(self, url: str) -> None:
        """Refuse a URL this client never calls: not https, a port not allowed, an IP literal not allowed."""
        parts = urlsplit(url)
        try:
            host, port = parts.hostname or "", parts.port or 443
        except ValueError as exc:
            raise ForbiddenAddress("bad_address", f"cannot parse {parts.netloc!r}") from exc
        if parts.scheme != "https" or not host or parts.username or parts.password:
            raise ForbiddenAddress("bad_address", f"only https://host[:port] is called, not {parts.scheme}://{host}")
        if port not in self.allowed_ports:
            allowed = ", ".join(map(str, sorted(self.allowed_ports)))
            raise ForbiddenAddress("forbidden_port", f"{host}:{port}: only ports {allowed} are called")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and (refusal := self.policy.refusal(literal)) is not None:
            raise ForbiddenAddress("forbidden_address", f"{host} ({refusal})")

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Answer:
        """One request; the answer's JSON. Raises Unavailable (transport), ForbiddenAddress, BadAnswer."""
        self.check_url(url)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        host = urlsplit(url).hostname
        try:
            async with self._open().request(
                method, url, params=params, data=body, headers=headers, allow_redirects=False
            ) as response:
                raw = await response.content.read(self.max_body + 1)
                status, answer_headers = response.status, dict(response.headers)
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, _Refused):
                raise ForbiddenAddress("forbidden_address", str(exc.os_error)) from exc
            raise Unavailable("not_resolved", str(exc.os_error)) from exc
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise Unavailable("tls_error", f"{host}: {exc}") from exc
        except aiohttp.ConnectionTimeoutError as exc:  # no connection in time: nothing was sent
            raise Unavailable("timeout", f"no connection to {host} within {self.timeout_s:g} s") from exc
        except aiohttp.ClientConnectorError as exc:  # refused, unreachable: nothing was sent
            raise Unavailable("connection_failed", f"{host}: {type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:  # connected and written, no answer in time
            detail = f"no answer from {host} within {self.timeout_s:g} s"
            raise Unavailable("timeout", detail, maybe_sent=True) from exc
        except (aiohttp.ClientError, OSError) as exc:  # the connection went away after the request left
            detail = f"{host}: {type(exc).__name__}: {exc}"
            raise Unavailable("connection_failed", detail, maybe_sent=True) from exc
        if len(raw) > self.max_body:
            raise BadAnswer("too_large", f"{host}: answer over {self.max_body} bytes")
        if 300 <= status < 400:
            raise BadAnswer("redirect", f"{host}: HTTP {status} (redirects are not followed)")
        try:
            document = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            document = None
        if document is None and status >= 500:
            raise Unavailable(f"http_{status}", f"{host}: HTTP {status}")
        if document is None:
            raise BadAnswer("not_json", f"{host}: HTTP {status}: {raw[:120].decode('utf-8', 'replace')!r}")
        return Answer(status, answer_headers, document)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
