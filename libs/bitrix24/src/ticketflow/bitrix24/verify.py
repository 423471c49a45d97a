"""Is this ONAPPINSTALL (or ONAPPUPDATE) really our application being installed on that portal?

An install event is a form anyone can post. Before its `application_token` is trusted (every later event
is authenticated by it) and its tokens stored, the claim is checked with what only the OAuth server and we
know:
1. the portal (`auth[member_id]`) belongs to one of the desks' applications, which is enabled (its client
   secret is set), and `auth[domain]` is one of that application's `portal_domains`;
2. the install's refresh token is renewed at the OAuth server with the application's client id and secret:
   a forged token, a token of another application, or a replayed install (its refresh token was spent
   when the install was first verified: refresh tokens are single-use) is refused there (`invalid_grant`,
   `invalid_client`);
3. the new pair names the same portal and domain, and `app.info` with the new access token says it belongs
   to our `client_id` on that portal and domain (the check b24pysdk's `validate_event_params` makes).
Any failure: `InstallRefused` (a 403 with the reason), nothing stored. The OAuth server unreachable:
`Unavailable` (a 503: the portal may send the event again)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ticketflow.bitrix24.apps import App, normalise_domain
from ticketflow.bitrix24.errors import InstallRefused, RestError, TokenRefreshRefused
from ticketflow.bitrix24.installs import Install
from ticketflow.bitrix24.oauth import OAuthServer


@dataclass(frozen=True)
class InstallClaim:
    """What an install event says (its `auth` block)."""

    member_id: str
    domain: str
    application_token: str = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)


async def verify_install(claim: InstallClaim, app: App | None, oauth: OAuthServer) -> Install:
    member_id, domain = claim.member_id.lower(), normalise_domain(claim.domain) if claim.domain else ""
    if app is None:
        raise InstallRefused("unknown_portal", f"portal {member_id!r} is not configured in any desk")
    if not app.enabled:
        raise InstallRefused("app_disabled", f"application {app.client_id}: its client secret is not set")
    if not claim.application_token or not claim.refresh_token:
        raise InstallRefused("no_tokens", "the install carries no auth[application_token] or auth[refresh_token]")
    if domain not in app.domains:
        raise InstallRefused("unknown_domain", f"{domain!r} is not among the desk's portal_domains")
    try:
        grant = await oauth.refresh(app.client_id, app.client_secret, claim.refresh_token)
    except TokenRefreshRefused as exc:
        raise InstallRefused(
            "not_verified",
            f"the OAuth server refused the install's refresh token ({exc.reason}): forged, replayed, "
            "or issued to another application",
        ) from exc
    if grant.member_id != member_id:
        raise InstallRefused("member_mismatch", f"the tokens are for portal {grant.member_id}, not {member_id}")
    if grant.domain != domain:
        raise InstallRefused("domain_mismatch", f"the tokens are for {grant.domain}, not {domain}")
    try:
        info = await oauth.app_info(grant.access_token)
    except RestError as exc:
        raise InstallRefused("not_verified", f"app.info refused the renewed token ({exc.code})") from exc
    if info.client_id != app.client_id:
        raise InstallRefused("wrong_application", f"the tokens belong to application {info.client_id}")
    if info.member_id != member_id or info.domain != domain or not info.installed:
        raise InstallRefused(
            "member_mismatch", f"app.info: portal {info.member_id} at {info.domain}, installed={info.installed}"
        )
    return Install.from_grant(grant, app.client_id, claim.application_token)
