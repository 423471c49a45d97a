"""A Bitrix24 portal with our application installed, and Bitrix24's OAuth server, on 127.0.0.1 over HTTPS
(certificates from a trustme CA: trust `ca_file`).

The OAuth server (`oauth_url`) issues token pairs as Bitrix24's does: an access token lives `access_ttl`
seconds (set it short to see a token expire during a test), a refresh token is spent by its one use
(`GET /oauth/token/?grant_type=refresh_token&client_id&client_secret&refresh_token`: a spent or unknown one
is `invalid_grant`, a wrong client `invalid_client`), and `GET /rest/app.info/?auth=` says whose token it
is. `install_auth()` issues a pair as the portal does at ONAPPINSTALL (the `auth` block of the event).

The portal (`domain`, REST at `/rest/<method>.json`, JSON or form bodies, `auth` in the body or query)
answers `expired_token` / `invalid_token` (401) for a token it does not accept, and:
`imbot.bot.list`, `imbot.register` (bots by CODE; ids from 7), `imbot.message.add` (to a registered bot;
`received`), `user.admin` (for the user tokens in `user_tokens`: token -> is admin), `app.info` (the
portal's own: the license) and `ticketflow.portal.info` (`portal_info`, the preflight license/updates
answer). With `limit_rate` it enforces a leaky bucket the way the cloud portal does (503
`QUERY_LIMIT_EXCEEDED`); `faults` answer before the normal behaviour.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .asgi import Fault, Faults, serve

TIME = {"start": 1721998816.3694, "finish": 1721998816.43663, "duration": 0.0672, "processing": 0.00006}
DEFAULT_PORTAL_INFO: dict[str, Any] = {
    "LICENSE": "ru_selfhosted_ent",
    "LICENSE_TYPE": "ent",
    "LICENSE_DEMO": False,
    "LICENSE_ACTIVE_UNTIL": "2099-12-31",
    "MODULES": {"main": "25.100.300", "im": "25.0.100"},
}


@dataclass(frozen=True)
class ReceivedMessage:
    bot_id: int
    dialog_id: str
    message: str
    params: dict[str, Any]
    at: float
    traceparent: str | None = None  # the W3C trace context the sender propagated, if any


@dataclass
class _Access:
    expires: float  # time.time()
    user_id: int


@dataclass
class Refresh:
    """One refresh at the OAuth server: which token was presented and how it ended."""

    token: str
    outcome: str  # "renewed", "invalid_grant", "invalid_client"
    at: float = field(default_factory=time.monotonic)


class FakeBitrix24:
    def __init__(
        self,
        *,
        member_id: str = "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        client_id: str = "local.ticketflow-test",
        client_secret: str = "client-secret-for-tests",
        access_ttl: float = 3600.0,
        refresh_delay: float = 0.0,
        known_dialogs: Iterable[str] | None = None,
        user_tokens: dict[str, bool] | None = None,
        limit_rate: float | None = None,
        limit_burst: int = 50,
        ca: trustme.CA | None = None,
    ) -> None:
        self.member_id = member_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_ttl = access_ttl
        self.refresh_delay = refresh_delay  # the OAuth server thinks this long (to overlap two renewals)
        self.known_dialogs = set(known_dialogs) if known_dialogs is not None else None
        self.user_tokens = dict(user_tokens or {})
        self.limit_rate = limit_rate
        self.limit_burst = limit_burst
        self.portal_info: dict[str, Any] = dict(DEFAULT_PORTAL_INFO)
        self.installed = True
        self.ca = ca or trustme.CA()
        self._level = 0.0
        self._level_at = time.monotonic()
        self._access: dict[str, _Access] = {}
        self._refresh: set[str] = set()  # issued and not yet spent
        self.refreshes: list[Refresh] = []
        self.bots: dict[int, dict[str, Any]] = {}
        self._bot_ids = itertools.count(7)
        self.received: list[ReceivedMessage] = []
        self.calls: list[tuple[str, str]] = []  # (method, outcome) of every REST call to the portal
        self.requests = 0
        self.limited = 0
        self.faults = Faults()
        self._ids = itertools.count(1001)
        self.base_url = ""
        self.oauth_url = ""
        self.ca_file = ""
        self.portal_app = Starlette(routes=[Route("/rest/{method:path}", self._rest, methods=["GET", "POST"])])
        self.oauth_app = Starlette(
            routes=[
                Route("/oauth/token/", self._token, methods=["GET", "POST"]),
                Route("/rest/app.info/", self._oauth_app_info, methods=["GET", "POST"]),
            ]
        )

    @property
    def domain(self) -> str:
        """host:port of the portal, as its events name it (`auth[domain]`)."""
        return self.base_url.removeprefix("https://")

    @property
    def port(self) -> int:
        return int(self.domain.rsplit(":", 1)[1])

    @property
    def oauth_port(self) -> int:
        return int(self.oauth_url.rsplit(":", 1)[1])

    @property
    def rest_url(self) -> str:
        return self.base_url + "/rest"

    @asynccontextmanager
    async def running(self, port: int = 0, oauth_port: int = 0) -> AsyncIterator[FakeBitrix24]:
        with tempfile.NamedTemporaryFile(suffix=".pem") as ca_pem:
            self.ca.cert_pem.write_to_path(ca_pem.name)
            self.ca_file = ca_pem.name
            async with (
                serve(self.portal_app, port, tls=self.ca) as base,
                serve(self.oauth_app, oauth_port, tls=self.ca) as oauth,
            ):
                self.base_url, self.oauth_url = base, oauth
                yield self

    # --- what a test does to the platform ---------------------------------------------------------

    def install_auth(self, application_token: str, *, user_id: int = 1) -> dict[str, str]:
        """The `auth` block of an ONAPPINSTALL as the portal sends it: a fresh pair of tokens."""
        access, refresh, expires = self._issue(user_id)
        return {
            "access_token": access,
            "expires": str(int(expires)),
            "expires_in": str(int(self.access_ttl)),
            "scope": "imbot,im,user",
            "domain": self.domain,
            "server_endpoint": f"{self.oauth_url}/rest/",
            "status": "L",
            "client_endpoint": f"{self.base_url}/rest/",
            "member_id": self.member_id,
            "user_id": str(user_id),
            "refresh_token": refresh,
            "application_token": application_token,
        }

    def install_form(self, application_token: str, event: str = "ONAPPINSTALL", **overrides: str) -> str:
        """The whole install (or update) event, form-encoded as Bitrix24 posts it."""
        auth = {**self.install_auth(application_token), **overrides}
        pairs = [("event", event), ("event_handler_id", "1"), ("ts", str(int(time.time())))]
        pairs += [
            (f"data[{k}]", v) for k, v in {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "ru"}.items()
        ]
        pairs += [(f"auth[{k}]", v) for k, v in auth.items()]
        return urlencode(pairs)

    def uninstall_form(self, application_token: str) -> str:
        auth = {"domain": self.domain, "server_endpoint": f"{self.oauth_url}/rest/", "member_id": self.member_id,
                "client_endpoint": f"{self.base_url}/rest/", "application_token": application_token}  # fmt: skip
        pairs = [("event", "ONAPPUNINSTALL"), ("event_handler_id", "1"), ("ts", str(int(time.time())))]
        pairs += [("data[LANGUAGE_ID]", "ru"), ("data[CLEAN]", "1")] + [(f"auth[{k}]", v) for k, v in auth.items()]
        return urlencode(pairs)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now (as an hour passing would do)."""
        for access in self._access.values():
            access.expires = min(access.expires, time.time() - 1)

    def renewed(self) -> int:
        return sum(1 for r in self.refreshes if r.outcome == "renewed")

    def fail_next(self, status: int, times: int = 1, *, body: Any = None, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        default = {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}
        self.faults.add(Fault(status, default if body is None else body, headers), times)

    def query_limit_next(self, times: int = 1) -> None:
        body = {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
        self.faults.add(Fault(503, body), times)

    # --- the OAuth server ---------------------------------------------------------------------------

    def _issue(self, user_id: int) -> tuple[str, str, float]:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        expires = time.time() + self.access_ttl
        self._access[access] = _Access(expires, user_id)
        self._refresh.add(refresh)
        return access, refresh, expires

    async def _token(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()})
        presented = params.get("refresh_token", "")
        if params.get("grant_type") != "refresh_token":
            return _error(400, "invalid_request", "unsupported grant_type")
        if params.get("client_id") != self.client_id or not hmac.compare_digest(
            params.get("client_secret", "").encode(), self.client_secret.encode()
        ):
            self.refreshes.append(Refresh(presented, "invalid_client"))
            return _error(401, "invalid_client", "Invalid client")
        if presented not in self._refresh or not self.installed:
            self.refreshes.append(Refresh(presented, "invalid_grant"))
            return _error(400, "invalid_grant", "Invalid grant")
        self._refresh.discard(presented)  # spent before the answer: a lost answer loses the pair
        if self.refresh_delay:
            await asyncio.sleep(self.refresh_delay)
        access, refresh, expires = self._issue(1)
        self.refreshes.append(Refresh(presented, "renewed"))
        return JSONResponse(
            {
                "access_token": access,
                "client_endpoint": f"{self.base_url}/rest/",
                "domain": "oauth.bitrix.info",
                "expires": int(expires),
                "expires_in": int(self.access_ttl),
                "member_id": self.member_id,
                "refresh_token": refresh,
                "scope": "imbot,im,user",
                "server_endpoint": f"{self.oauth_url}/rest/",
                "status": "L",
                "user_id": 1,
            }
        )

    async def _oauth_app_info(self, request: Request) -> Response:
        token = request.query_params.get("auth", "")
        access = self._access.get(token)
        if access is None or access.expires < time.time():
            return _error(401, "expired_token" if access else "invalid_token", "The access token is not valid.")
        install = {"installed": self.installed, "version": 1, "status": "L", "scope": "imbot,im,user",
                   "domain": self.domain, "uri": f"{self.base_url}/", "client_endpoint": f"{self.base_url}/rest/",
                   "member_id": self.member_id, "member_type": "PORTAL"}  # fmt: skip
        expires = datetime.fromtimestamp(access.expires, UTC).isoformat()
        result = {"client_id": self.client_id, "scope": "imbot,im,user", "expires": expires, "install": install,
                  "user_id": access.user_id}  # fmt: skip
        return JSONResponse({"result": result, "time": TIME})

    # --- the portal's REST ----------------------------------------------------------------------------

    def _over_limit(self) -> bool:
        if self.limit_rate is None:
            return False
        now = time.monotonic()
        self._level = max(0.0, self._level - (now - self._level_at) * self.limit_rate)
        self._level_at = now
        if self._level + 1 > self.limit_burst:
            return True
        self._level += 1
        return False

    async def _rest(self, request: Request) -> Response:
        self.requests += 1
        method = request.path_params["method"].removesuffix(".json").removesuffix("/")
        raw = await request.body()
        params: dict[str, Any]
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                params = json.loads(raw) if raw else {}
                assert isinstance(params, dict)
            except (ValueError, AssertionError):
                return _error(400, "INVALID_REQUEST", "Body is not a JSON object")
        else:  # a form (or nothing: the network checks' GET of the REST root)
            params = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        token = str(params.get("auth") or request.query_params.get("auth") or "")
        answer = await self._answer(method, token, params, request.headers.get("traceparent"))
        self.calls.append((method, _outcome(bytes(answer.body))))
        return answer

    async def _answer(self, method: str, token: str, params: dict[str, Any], traceparent: str | None) -> Response:
        if method == "user.admin" and token in self.user_tokens:
            return JSONResponse({"result": self.user_tokens[token], "time": TIME})
        access = self._access.get(token)
        if access is None:
            return _error(401, "invalid_token", "The access token provided is invalid.")
        if access.expires < time.time():
            return _error(401, "expired_token", "The access token provided has expired.")
        if self._over_limit():
            self.limited += 1
            return _error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        fault = self.faults.take()
        if fault is not None:
            return await fault.response()
        if method == "imbot.bot.list":
            found = {
                str(i): {"ID": i, "NAME": b["NAME"], "CODE": b["CODE"], "OPENLINE": "N"} for i, b in self.bots.items()
            }
            return JSONResponse({"result": found or [], "time": TIME})
        if method == "imbot.register":
            return self._register(params)
        if method == "imbot.message.add":
            return self._add(params, traceparent)
        if method == "user.admin":
            return JSONResponse({"result": True, "time": TIME})  # the install's user: an administrator
        if method == "app.info":
            return JSONResponse({"result": {"ID": 5, "CODE": self.client_id, "STATUS": "L", "INSTALLED": True,
                                            "LICENSE": self.portal_info.get("LICENSE")}, "time": TIME})  # fmt: skip
        if method == "ticketflow.portal.info":
            return JSONResponse({"result": self.portal_info, "time": TIME})
        return _error(404, "ERROR_METHOD_NOT_FOUND", f"Method not found: {method}")

    def _register(self, params: dict[str, Any]) -> Response:
        code = str(params.get("CODE", ""))
        if not code:
            return _error(400, "CODE_ERROR", "Bot code isn't specified")
        for key in ("EVENT_MESSAGE_ADD", "EVENT_WELCOME_MESSAGE", "EVENT_BOT_DELETE"):
            if not str(params.get(key, "")).startswith(("https://", "http://")):
                return _error(400, f"{key}_ERROR", "Wrong handler URL")
        properties = params.get("PROPERTIES")
        if not isinstance(properties, dict) or not (properties.get("NAME") or properties.get("LAST_NAME")):
            return _error(400, "NAME_ERROR", "Bot name isn't specified")
        bot_id = next(self._bot_ids)
        self.bots[bot_id] = {"CODE": code, "NAME": properties.get("NAME", ""), "HANDLER": params["EVENT_MESSAGE_ADD"]}
        return JSONResponse({"result": bot_id, "time": TIME})

    def _add(self, params: dict[str, Any], traceparent: str | None) -> Response:
        try:
            bot_id = int(params.get("BOT_ID", 0))
        except (TypeError, ValueError):
            bot_id = 0
        if bot_id not in self.bots:
            return _error(400, "BOT_ID_ERROR", "Bot not found")
        dialog_id, message = str(params.get("DIALOG_ID", "")), str(params.get("MESSAGE", ""))
        if not dialog_id or (self.known_dialogs is not None and dialog_id not in self.known_dialogs):
            return _error(400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty")
        if not message:
            return _error(400, "MESSAGE_EMPTY", "Message can't be empty")
        self.received.append(ReceivedMessage(bot_id, dialog_id, message, params, time.monotonic(), traceparent))
        return JSONResponse({"result": next(self._ids), "time": {"start": time.time(), "duration": 0.01}})


def _outcome(body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return "not json"
    return str(document.get("error", "ok")) if isinstance(document, dict) else "ok"


def _error(status: int, code: str, description: str) -> Response:
    return JSONResponse({"error": code, "error_description": description}, status_code=status)
