"""Is the author of a Bitrix24 message an administrator of the portal? Asked with REST `user.admin`.

Bitrix24's ONIMBOTMESSAGEADD has no admin flag. Its `auth` block is the authorisation of the user on
whose behalf the event fired (the message's author; the bot's own token is in `data[BOT][<id>]`), and
`user.admin` (scope `basic`, no parameters) answers `{"result": true|false}` for the token's user: in a
box portal, membership of the administrators group. So intake posts `auth=<auth[access_token]>` to
`https://<portal>/rest/user.admin.json` and sets `ChatSender.is_admin` from the answer.

Not an SSRF vector:
- the address is the portal domain of the verified install (`ticketflow.bitrix24`) for the event's
  `member_id`, never one read from this request, and only on a port `TICKETFLOW_B24_ALLOWED_PORTS`
  allows; an event whose `auth[domain]` or `auth[client_endpoint]` names another host is not checked
  at all (`domain_mismatch`: the token is not sent anywhere);
- the name is resolved once, every address is judged (loopback, private, link-local, multicast, reserved,
  not globally routable: refused, unless a deployment allows that network with
  `TICKETFLOW_B24_ALLOWED_NETWORKS`), and the connection goes to the judged IP while TLS SNI,
  certificate verification and the Host header use the name (no second lookup for DNS rebinding to answer);
- HTTPS only with the system trust store (plus `TICKETFLOW_B24_CA_FILE`, if a deployment names one),
  one overall timeout, redirects never followed, body capped, no proxy from the environment, no
  connection reuse across portals.

The token is the author's, not the install's: `user.admin` answers for the token's own user, and the
install's user is the administrator who installed the application. It must be the author's
(`auth[user_id]` = `data[USER][ID]`), else the answer would be about someone else
(`token_user_mismatch`). Definite answers are cached per (member_id, user_id) for `ttl_s`;
concurrent messages of one user share one call.

When the portal cannot be asked (timeout, refused, 401, garbage, ...) the message is still accepted: a
definite answer younger than `stale_s` is used if there is one (metric outcome `stale`); otherwise
`is_admin=False` and `admin_unverified="<reason>: <detail>"`, which travels into the ticket's
`Requester.admin_unverified` so preflight and agents can tell "not an administrator" from "could not be
verified". A portal that just failed at the transport level is not asked again for `down_s` seconds.

b24pysdk has `client.user.admin()`, but its calls are blocking (requests) and connect wherever DNS says,
so the pinning above would be lost; httpx (async) with the `sni_hostname` extension is used instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec

from ticketflow.contracts.chat import ChatMessage
from ticketflow.intake.metrics import Metrics
from ticketflow.intake.platforms.bitrix24 import Bitrix24Event
from ticketflow.runtime.netguard import AddressPolicy, IPAddress, NameNotResolvedError, Resolver, SystemResolver

log = logging.getLogger("ticketflow.intake")
_MAX_BODY = 64 * 1024


class CheckFailed(Exception):
    """The portal could not be asked; `reason` is a stable code (metric label), `detail` says more."""

    def __init__(self, reason: str, detail: str = "", *, transport: bool = False) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.transport = transport  # the portal itself is unreachable (not just this token)


@dataclass(frozen=True)
class Verdict:
    is_admin: bool
    unverified: str | None  # None: a definite answer (fresh, cached or stale)
    outcome: str  # admin | not_admin | cached | stale | unverified | stated


@dataclass
class _Known:
    is_admin: bool
    at: float


class AdminCheck:
    """`policy`: the addresses a portal may have (public ones, plus the networks a deployment allows:
    `TICKETFLOW_B24_ALLOWED_NETWORKS`); `ca_file`: CAs trusted besides the system's
    (`TICKETFLOW_B24_CA_FILE`, for portals with an internal CA); `resolver`: the system's unless
    given (tests name their own)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        policy: AddressPolicy | None = None,
        ca_file: str | Path | None = None,
        resolver: Resolver | None = None,
        ports: frozenset[int] | None = None,
        timeout_s: float = 3.0,
        ttl_s: float = 600.0,
        stale_s: float = 86_400.0,
        down_s: float = 30.0,
        kept: int = 100_000,
    ) -> None:
        self.metrics = metrics
        self.resolver: Resolver = resolver or SystemResolver()
        self.policy = policy or AddressPolicy()
        self.ports = ports  # None: any port the install's domain names (tests of this module only)
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self.stale_s = stale_s
        self.down_s = down_s
        self.kept = kept
        self._ssl = ssl.create_default_context()
        if ca_file is not None:
            self._ssl.load_verify_locations(cafile=str(ca_file))
        self._known: dict[tuple[str, str], _Known] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self._down: dict[str, tuple[float, CheckFailed]] = {}

    async def apply(self, event: Bitrix24Event, message: ChatMessage, portal_domain: str | None) -> ChatMessage:
        """The message with the sender's admin flag settled (or marked unverified, with the reason)."""
        verdict = await self.verdict(event, message.sender.user_id, portal_domain)
        self.metrics.inc("ticketflow_intake_admin_checks", outcome=verdict.outcome)
        if verdict.outcome == "stated":
            return message
        sender = msgspec.structs.replace(message.sender, is_admin=verdict.is_admin, admin_unverified=verdict.unverified)
        return msgspec.structs.replace(message, sender=sender)

    async def verdict(self, event: Bitrix24Event, user_id: str, portal_domain: str | None) -> Verdict:
        user = event.data.get("USER")
        stated = user.get("IS_ADMIN") if isinstance(user, dict) else None
        if stated in ("Y", "N"):  # the portal said so itself (the event is authenticated by its token)
            return Verdict(stated == "Y", None, "stated")
        key = (event.member_id, user_id)
        now = time.monotonic()
        known = self._known.get(key)
        if known is not None and now - known.at < self.ttl_s:
            return Verdict(known.is_admin, None, "cached")
        try:
            try:
                domain = self._target(event, user_id, portal_domain)
                is_admin = await self._shared(key, domain, event.access_token)
            except CheckFailed:
                raise
            except Exception as exc:  # never let the portal's trouble become the webhook's 4xx/5xx
                raise CheckFailed("check_error", repr(exc)) from exc
        except CheckFailed as failed:
            self.metrics.inc("ticketflow_intake_admin_unverified", reason=failed.reason)
            log.warning("Bitrix24 %s user %s: admin check failed: %s", event.member_id, user_id, failed)
            if known is not None and now - known.at < self.stale_s:
                return Verdict(known.is_admin, None, "stale")
            return Verdict(False, str(failed)[:300], "unverified")
        return Verdict(is_admin, None, "admin" if is_admin else "not_admin")

    def _target(self, event: Bitrix24Event, user_id: str, portal_domain: str | None) -> str:
        if not event.access_token:
            raise CheckFailed("no_access_token", "the event carries no auth[access_token]")
        if event.auth_user_id != user_id:
            raise CheckFailed("token_user_mismatch", f"auth[user_id]={event.auth_user_id!r}, author={user_id!r}")
        if event.token_expires is not None and event.token_expires <= time.time():
            raise CheckFailed("token_expired", "auth[expires] is in the past")
        if not portal_domain:
            raise CheckFailed("no_portal_domain", "no domain was stored for this portal at install")
        stored = portal_domain.lower()
        named = {event.domain.lower()} if event.domain else set()
        if event.client_endpoint:
            named.add(urlsplit(event.client_endpoint).netloc.lower())
            if not event.client_endpoint.lower().startswith("https://"):
                raise CheckFailed("domain_mismatch", f"client_endpoint {event.client_endpoint!r} is not https")
        if named - {stored}:
            raise CheckFailed("domain_mismatch", f"event names {sorted(named)}, the portal installed as {stored!r}")
        return stored

    async def _shared(self, key: tuple[str, str], domain: str, token: str) -> bool:
        """One call per (portal, user) at a time: concurrent messages wait for the same answer. The call
        is its own task, so a webhook whose client went away does not cancel it for the others."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._ask(domain, token))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: tuple[str, str], task: asyncio.Future[bool]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled() and task.exception() is None:  # exception() also marks it retrieved
            self._remember(key, task.result())

    def _remember(self, key: tuple[str, str], is_admin: bool) -> None:
        if len(self._known) >= self.kept:
            self._known.pop(next(iter(self._known)))
        self._known.pop(key, None)
        self._known[key] = _Known(is_admin, time.monotonic())

    async def _ask(self, domain: str, token: str) -> bool:
        down = self._down.get(domain)
        if down is not None and time.monotonic() < down[0]:
            raise CheckFailed(down[1].reason, f"{down[1].detail} (failed less than {self.down_s:.0f} s ago)")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._post(domain, token)
        except TimeoutError as exc:
            failed = CheckFailed("timeout", f"no answer from {domain} within {self.timeout_s} s", transport=True)
            self._down[domain] = (time.monotonic() + self.down_s, failed)
            raise failed from exc
        except CheckFailed as failed:
            if failed.transport:
                self._down[domain] = (time.monotonic() + self.down_s, failed)
            raise

    async def _post(self, domain: str, token: str) -> bool:
        parts = urlsplit(f"https://{domain}")
        try:
            host, port = parts.hostname or "", parts.port or 443
        except ValueError as exc:
            raise CheckFailed("bad_portal_domain", repr(domain)) from exc
        if not host or parts.path or parts.query or parts.username:
            raise CheckFailed("bad_portal_domain", repr(domain))
        if self.ports is not None and port not in self.ports:
            raise CheckFailed("forbidden_port", f"{host}:{port} (TICKETFLOW_B24_ALLOWED_PORTS)", transport=True)
        try:
            addresses: Sequence[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = await self.resolver.resolve(host, port)
            except NameNotResolvedError as exc:
                raise CheckFailed("not_resolved", f"{host}: {exc}", transport=True) from exc
        if not addresses:
            raise CheckFailed("not_resolved", f"{host} has no addresses", transport=True)
        for address in addresses:  # a mixed answer is not trusted: one bad address refuses the name
            refusal = self.policy.refusal(address)
            if refusal is not None:
                raise CheckFailed("forbidden_address", f"{host} resolves to {address} ({refusal})", transport=True)
        host_header = host if port == 443 else f"{host}:{port}"
        last: Exception | None = None
        async with httpx.AsyncClient(
            verify=self._ssl,
            trust_env=False,
            follow_redirects=False,
            timeout=self.timeout_s,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            for address in addresses:
                literal = f"[{address}]" if address.version == 6 else str(address)
                try:
                    async with client.stream(
                        "POST",
                        f"https://{literal}:{port}/rest/user.admin.json",
                        data={"auth": token},
                        headers={"Host": host_header, "Accept": "application/json"},
                        extensions={"sni_hostname": host},
                    ) as answer:
                        body = bytearray()
                        async for chunk in answer.aiter_bytes():
                            body += chunk
                            if len(body) > _MAX_BODY:
                                raise CheckFailed("bad_answer", f"answer over {_MAX_BODY} bytes")
                        return _parse(answer.status_code, bytes(body))
                except httpx.ConnectError as exc:
                    if _is_tls_failure(exc):
                        raise CheckFailed("tls_error", f"{host}: {exc}", transport=True) from exc
                    last = exc
                except httpx.TimeoutException as exc:
                    raise TimeoutError(str(exc)) from exc
                except httpx.HTTPError as exc:
                    raise CheckFailed("protocol_error", f"{host}: {exc!r}", transport=True) from exc
        raise CheckFailed("connection_failed", f"{host}:{port}: {last}", transport=True)


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in str(exc)


def _parse(status: int, body: bytes) -> bool:
    """`{"result": true|false}` with 200; Bitrix24 REST errors are `{"error": CODE, "error_description": ...}`."""
    if 300 <= status < 400:
        raise CheckFailed("redirect", f"HTTP {status} (redirects are not followed)")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        document = None
    if isinstance(document, dict) and "error" in document:
        code = str(document.get("error"))[:80]
        raise CheckFailed(f"http_{status}" if status != 200 else "rest_error", code)
    if status != 200:
        raise CheckFailed(f"http_{status}", body[:120].decode("utf-8", "replace"))
    if not isinstance(document, dict) or not isinstance(document.get("result"), bool):
        raise CheckFailed("bad_answer", body[:120].decode("utf-8", "replace"))
    return bool(document["result"])
