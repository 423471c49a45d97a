"""Calls to a portal's REST API with the install's tokens: `POST https://<install domain>/rest/<method>.json`
with the parameters and `auth` (the access token) as JSON.

The token is renewed before a call when it is about to expire, and when the portal refuses it
(`expired_token`, `invalid_token`: revoked early, or clocks disagree) the call is renewed and made once
more; a refused call had no effect, so the second one is not a duplicate. The portal's address is the
install's domain, and only while the desk still configures it (`portal_domains`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ticketflow.bitrix24.apps import Apps
from ticketflow.bitrix24.errors import (
    BadAnswer,
    ForbiddenAddress,
    NotInstalled,
    RestError,
    TokenRefreshRefused,
    Unavailable,
)
from ticketflow.bitrix24.http import GuardedHttp
from ticketflow.bitrix24.installs import Install, Installs
from ticketflow.bitrix24.oauth import OAuthServer

TOKEN_REFUSED = frozenset({"expired_token", "invalid_token"})
RETRYABLE = frozenset({"QUERY_LIMIT_EXCEEDED", "INTERNAL_SERVER_ERROR", "OPERATION_TIME_LIMIT"})


class _TokenRefused(Exception):
    def __init__(self, error: RestError) -> None:
        super().__init__(str(error))
        self.error = error


class PortalRest:
    def __init__(self, installs: Installs, apps: Apps, oauth: OAuthServer, http: GuardedHttp) -> None:
        self.installs = installs
        self.apps = apps
        self.oauth = oauth
        self.http = http

    async def install(self, member_id: str) -> Install:
        """The portal's install, if it may be called. Raises NotInstalled, TokenRefreshRefused, ForbiddenAddress."""
        install = await self.installs.get(member_id)
        if install is None:
            raise NotInstalled("not_installed", f"portal {member_id} has not installed the application")
        if install.refresh_failure:
            raise TokenRefreshRefused("refresh_refused", install.refresh_failure)
        app = self.apps.for_member(install.member_id)
        if app is None or install.domain not in app.domains:
            raise ForbiddenAddress("domain_not_configured", f"{install.domain} is not among the desk's portal_domains")
        return install

    async def call(self, member_id: str, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """`result` of the call, with the install's token. Raises the `errors` module's types."""
        install = await self.install(member_id)
        if install.expiring():
            install = await self._renew(install, stale=None)
        try:
            return await self._post(install, install.access_token, method, params)
        except _TokenRefused:
            install = await self._renew(install, stale=install.access_token)
        try:
            return await self._post(install, install.access_token, method, params)
        except _TokenRefused as refused:
            raise refused.error from None

    async def call_as(self, member_id: str, token: str, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """`result` of the call with someone else's token (an event's author: `user.admin`), at the install's
        address; never renewed (we hold no refresh token for it)."""
        install = await self.install(member_id)
        try:
            return await self._post(install, token, method, params)
        except _TokenRefused as refused:
            raise refused.error from None

    async def _renew(self, install: Install, *, stale: str | None) -> Install:
        app = self.apps.for_member(install.member_id)
        try:
            return await self.installs.renew(
                install.member_id, self.oauth, app.client_secret if app else "", stale=stale
            )
        except Unavailable as exc:  # the renewal's answer was lost, not the call's: the call was never sent
            raise Unavailable(exc.reason, exc.detail, retry_after=exc.retry_after) from exc

    async def _post(self, install: Install, token: str, method: str, params: Mapping[str, Any] | None) -> Any:
        body = msgspec.json.encode({**(params or {}), "auth": token})
        answer = await self.http.request("POST", install.rest_url(method), body=body)
        document = answer.document
        if isinstance(document, dict) and "error" in document:
            error = RestError(
                str(document["error"])[:80], str(document.get("error_description", ""))[:200], answer.status
            )
            if error.code in TOKEN_REFUSED:
                raise _TokenRefused(error)
            if error.code in RETRYABLE or answer.status >= 500 or answer.status == 429:
                raise Unavailable(error.code, error.detail, retry_after=_retry_after(answer.headers))
            raise error
        if answer.status >= 500 or answer.status == 429:
            raise Unavailable(f"http_{answer.status}", method, retry_after=_retry_after(answer.headers))
        if not isinstance(document, dict) or "result" not in document or not 200 <= answer.status < 300:
            raise BadAnswer("bad_answer", f"{method}: HTTP {answer.status}: {str(document)[:120]}")
        return document["result"]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return float(value) if value is not None and value.strip().isdigit() else None
