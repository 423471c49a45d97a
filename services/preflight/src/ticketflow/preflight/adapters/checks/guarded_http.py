"""A minimal HTTPS GET that cannot be steered to an internal address.

Every hop (the first URL and each redirect) is resolved once, every resolved address is judged by the
AddressPolicy, and the connection goes to the judged IP while TLS SNI and the Host header carry the name:
no second lookup exists that DNS rebinding could answer differently. Redirects are followed by hand, up to
a limit, and the body is read up to a byte cap. HTTP/1.1 framing is h11's job (sans-I/O, the parser httpx
itself uses); the sockets are plain asyncio streams so the pinning above stays in our hands.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import h11

from ticketflow.preflight.adapters.checks.policy import ChecksConfig, IPAddress
from ticketflow.runtime.netguard import NameNotResolvedError, Resolver

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 64 * 1024


class FetchFailure(Exception):
    """A fetch that did not produce an HTTP answer; `reason` is a stable machine code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class FetchTrace:
    """What happened so far; filled in as the fetch goes, so a timeout still leaves evidence."""

    resolved: list[str] = field(default_factory=list)
    connected: str | None = None
    redirects: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HttpsUrl:
    host: str  # ASCII (IDNA) form, lower case
    port: int
    target: str  # path and query, as sent in the request line
    url: str

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == 443 else f"{name}:{self.port}"


@dataclass(frozen=True)
class HttpAnswer:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def parse_https_url(url: str) -> HttpsUrl:
    """Parse an https URL strictly; raises FetchFailure("malformed_url" | "not_https")."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or 443
        host = (parts.hostname or "").rstrip(".")
        ascii_host = host.encode("idna").decode("ascii").lower() if host else ""
    except (ValueError, UnicodeError) as exc:
        raise FetchFailure("malformed_url", f"cannot parse {url!r}: {exc}") from exc
    if not ascii_host or any(c in ascii_host for c in " /\\@"):
        raise FetchFailure("malformed_url", f"no valid host in {url!r}")
    if parts.scheme.lower() != "https":
        raise FetchFailure("not_https", f"{url!r} does not use https")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return HttpsUrl(host=ascii_host, port=port, target=target, url=url.strip())


async def resolve_allowed(
    host: str, port: int, resolver: Resolver, config: ChecksConfig, trace: FetchTrace
) -> list[IPAddress]:
    """Refuse a port the desk does not allow; resolve `host` and refuse it when ANY address is not allowed
    (a mixed answer is not trusted)."""
    if config.allowed_ports is not None and port not in config.allowed_ports:
        allowed = ", ".join(map(str, sorted(config.allowed_ports)))
        raise FetchFailure("forbidden_port", f"{host}:{port}: only ports {allowed} may be checked")
    policy = config.address_policy
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = list(await resolver.resolve(host, port))
        except NameNotResolvedError as exc:
            raise FetchFailure("not_resolved", f"{host} does not resolve: {exc}") from exc
    if not addresses:
        raise FetchFailure("not_resolved", f"{host} has no addresses")
    trace.resolved.extend(str(a) for a in addresses if str(a) not in trace.resolved)
    for address in addresses:
        refusal = policy.refusal(address)
        if refusal is not None:
            raise FetchFailure("forbidden_address", f"{host} resolves to {address} ({refusal})")
    return addresses


def make_ssl_context(config: ChecksConfig, *, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if config.extra_trusted_ca_pem:
        context.load_verify_locations(cadata=config.extra_trusted_ca_pem)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def open_pinned(
    url: HttpsUrl, addresses: list[IPAddress], context: ssl.SSLContext, trace: FetchTrace
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the first reachable checked address; TLS SNI and verification use the name."""
    last_error: OSError | None = None
    for address in addresses:
        try:
            reader, writer = await asyncio.open_connection(
                str(address), url.port, ssl=context, server_hostname=url.host
            )
        except ssl.SSLError:
            trace.connected = str(address)
            raise
        except OSError as exc:
            last_error = exc
            continue
        trace.connected = str(address)
        return reader, writer
    raise FetchFailure("connection_failed", f"{url.host}:{url.port}: {last_error}")


async def _exchange(
    url: HttpsUrl, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: ChecksConfig
) -> HttpAnswer:
    conn = h11.Connection(our_role=h11.CLIENT)
    headers = [
        ("Host", url.host_header),
        ("User-Agent", config.user_agent),
        ("Accept", "application/json, text/html;q=0.9, */*;q=0.5"),
        ("Connection", "close"),
    ]
    try:
        request = conn.send(h11.Request(method="GET", target=url.target, headers=headers)) or b""
    except h11.LocalProtocolError as exc:  # e.g. a redirect Location with characters HTTP forbids
        raise FetchFailure("malformed_url", f"cannot request {url.url!r}: {exc}") from exc
    writer.write(request + (conn.send(h11.EndOfMessage()) or b""))
    await writer.drain()
    response: h11.Response | None = None
    body = bytearray()
    truncated = False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise FetchFailure("not_http", f"the server did not answer in HTTP: {exc}") from exc
        if event is h11.NEED_DATA:
            try:
                chunk = await reader.read(_READ_CHUNK)
            except (ssl.SSLError, ConnectionError) as exc:
                if response is None:
                    raise FetchFailure("connection_failed", f"read failed: {exc}") from exc
                break  # a peer that drops the line after the answer began: keep what arrived
            conn.receive_data(chunk)
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            room = config.max_body_bytes - len(body)
            body += event.data[:room]
            if len(event.data) > room:
                truncated = True
                break
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    if response is None:
        raise FetchFailure("not_http", "the connection closed before an HTTP answer")
    return HttpAnswer(
        url=url.url,
        status=response.status_code,
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers},
        body=bytes(body),
        truncated=truncated,
    )


async def request_once(
    url: HttpsUrl,
    addresses: list[IPAddress],
    context: ssl.SSLContext,
    config: ChecksConfig,
    trace: FetchTrace,
) -> HttpAnswer:
    try:
        reader, writer = await open_pinned(url, addresses, context, trace)
    except ssl.SSLError as exc:
        raise FetchFailure("tls_handshake_failed", f"{url.host}:{url.port}: {exc}") from exc
    try:
        return await _exchange(url, reader, writer, config)
    finally:
        # abort, not close: a graceful TLS shutdown waits on the peer, and a hung peer would hang us.
        writer.transport.abort()


async def guarded_get(
    url: str,
    *,
    resolver: Resolver,
    config: ChecksConfig,
    trace: FetchTrace,
    verify_tls: bool = False,
) -> HttpAnswer:
    """GET `url`, following redirects by hand and re-checking every hop's addresses."""
    context = make_ssl_context(config, verify=verify_tls)
    visited: set[str] = set()
    current = url
    for _hop in range(config.max_redirects + 1):
        parsed = parse_https_url(current)
        if parsed.url in visited:
            raise FetchFailure("redirect_loop", f"redirects loop back to {parsed.url}")
        visited.add(parsed.url)
        addresses = await resolve_allowed(parsed.host, parsed.port, resolver, config, trace)
        answer = await request_once(parsed, addresses, context, config, trace)
        location = answer.headers.get("location")
        if answer.status not in _REDIRECT_STATUSES or not location:
            return answer
        current = urljoin(parsed.url, location)
        trace.redirects.append(current)
        if urlsplit(current).scheme.lower() != "https":
            raise FetchFailure("redirect_not_https", f"{parsed.url} redirects to {current}")
    raise FetchFailure("too_many_redirects", f"more than {config.max_redirects} redirects from {url}")
