"""Bitrix24's OAuth server (`oauth.bitrix.info`; every portal's tokens, cloud and box, are issued and renewed
there): renewing a portal's tokens with the application's client secret, and `app.info`, which says whose
token a token is (application, portal, domain, user).

Protocol (Bitrix24 REST docs, "settings/oauth"): `GET <server>/oauth/token/?grant_type=refresh_token&
client_id=...&client_secret=...&refresh_token=...` answers a new pair (`access_token` for about an hour,
`refresh_token` single-use, valid 180 days) with `expires`, `member_id`, `client_endpoint`
(`https://<portal>/rest/`), `user_id`, `scope`, `status`; an error is `{"error": "invalid_grant" |
"invalid_client" | "PAYMENT_REQUIRED" | ..., "error_description": ...}`. `GET <server>/rest/app.info/?auth=
<access token>` answers `{"result": {"client_id", "scope", "expires", "user_id", "install": {"installed",
"domain", "member_id", "client_endpoint", ...}}}` (what b24pysdk's `validate_event_params` checks an event
against). The answers are parsed by b24pysdk's data classes (`RenewedOAuth`, `B24AppInfoResult`); the
requests are ours (asynchronous, SSRF-guarded: `GuardedHttp`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from b24pysdk.api.responses import B24AppInfoResult
from b24pysdk.credentials import RenewedOAuth
from b24pysdk.errors import BitrixValidationError

from ticketflow.bitrix24.errors import BadAnswer, RestError, TokenRefreshRefused, Unavailable
from ticketflow.bitrix24.http import GuardedHttp

DEFAULT_SERVER = "https://oauth.bitrix.info"


def endpoint_domain(client_endpoint: str) -> str:
    """`https://portal.example.ru/rest/` -> `portal.example.ru` (host[:port], lower case)."""
    return urlsplit(client_endpoint).netloc.lower()


@dataclass(frozen=True)
class Grant:
    """A pair of tokens the OAuth server issued, and the portal it is for."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    member_id: str
    domain: str  # the portal's host[:port], from client_endpoint
    user_id: int | None = None


@dataclass(frozen=True)
class AppInfo:
    client_id: str
    member_id: str
    domain: str
    installed: bool
    user_id: int


class OAuthServer:
    def __init__(self, http: GuardedHttp, base_url: str = DEFAULT_SERVER) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")

    async def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> Grant:
        """A new pair for `refresh_token` (which is spent by this call). Raises TokenRefreshRefused when
        the server says no, Unavailable when it cannot be asked, BadAnswer for an unreadable answer."""
        params = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }
        answer = await self.http.request("GET", f"{self.base_url}/oauth/token/", params=params)
        document = answer.document
        if answer.status >= 500 or answer.status == 429:
            raise Unavailable(f"oauth_http_{answer.status}", _error_text(document))
        if not isinstance(document, dict) or "error" in document or answer.status >= 400:
            code = str(document.get("error", f"http_{answer.status}")) if isinstance(document, dict) else "error"
            raise TokenRefreshRefused(code[:80], _error_text(document))
        try:
            renewed = RenewedOAuth.from_dict(document)
        except BitrixValidationError as exc:
            raise BadAnswer("oauth_bad_answer", str(exc)[:200]) from exc
        token = renewed.oauth_token
        if not token.refresh_token or token.expires is None:
            raise BadAnswer("oauth_bad_answer", "no refresh_token or expires in the answer")
        return Grant(
            access_token=token.access_token,
            refresh_token=token.refresh_token,
            expires_at=token.expires.astimezone(UTC),
            member_id=str(renewed.member_id).lower(),
            domain=endpoint_domain(renewed.client_endpoint),
            user_id=renewed.user_id,
        )

    async def app_info(self, access_token: str) -> AppInfo:
        """Whose token `access_token` is, as the OAuth server knows it."""
        answer = await self.http.request("GET", f"{self.base_url}/rest/app.info/", params={"auth": access_token})
        document = answer.document
        if answer.status >= 500:
            raise Unavailable(f"oauth_http_{answer.status}", _error_text(document))
        if not isinstance(document, dict) or "error" in document or not isinstance(document.get("result"), dict):
            code = str(document.get("error", "bad_answer")) if isinstance(document, dict) else "bad_answer"
            raise RestError(code[:80], _error_text(document), answer.status)
        try:
            result = B24AppInfoResult.from_dict(document["result"])
        except (BitrixValidationError, KeyError, TypeError, ValueError) as exc:
            raise BadAnswer("app_info_bad_answer", repr(exc)[:200]) from exc
        install = result.install
        return AppInfo(
            client_id=result.client_id,
            member_id=install.member_id.lower(),
            domain=(endpoint_domain(install.client_endpoint) or install.domain).lower(),
            installed=bool(install.installed),
            user_id=result.user_id,
        )


def _error_text(document: Any) -> str:
    if isinstance(document, dict):
        return str(document.get("error_description") or document.get("error") or "")[:200]
    return ""
