"""What can go wrong talking to Bitrix24, typed by what the caller must do. Every error carries a stable
`reason` (a metric label, a dead-letter cause) and a `detail` that says more; none carries a token."""

from __future__ import annotations


class Bitrix24Error(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Unavailable(Bitrix24Error):
    """The portal or the OAuth server could not be asked now (timeout, refused connection, TLS failure,
    a 5xx, a rate limit). Nothing changed on our side: try again later. `maybe_sent`: the request had left
    when the answer was lost (a timeout or a dropped connection after connecting), so the portal may have
    acted on it; a call that is not idempotent (a chat message) must not be repeated blindly."""

    def __init__(
        self, reason: str, detail: str = "", *, retry_after: float | None = None, maybe_sent: bool = False
    ) -> None:
        super().__init__(reason, detail)
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


class ForbiddenAddress(Bitrix24Error):
    """The portal's address is not one we may contact (the SSRF guard: private, loopback, a port or scheme
    we do not call). Retrying cannot help: the install or the deployment's allowed networks must change."""


class BadAnswer(Bitrix24Error):
    """An answer we cannot read (not JSON, too large, an unexpected shape). A call that may have had its
    effect (a 2xx) must not be repeated blindly."""


class NotInstalled(Bitrix24Error):
    """No verified install of our application for this portal (never installed, uninstalled, or its row
    deleted). Permanent until the portal installs the application again."""


class TokenRefreshRefused(Bitrix24Error):
    """The OAuth server refused to renew the portal's tokens (`invalid_grant`: the refresh token is spent
    or expired; `invalid_client`; `PAYMENT_REQUIRED`). Permanent until the application is reinstalled (or
    the desk's client secret is corrected); recorded on the install so no process asks again."""


class RestError(Bitrix24Error):
    """The portal answered the REST call with an error (`{"error": CODE, "error_description": ...}`) that
    is not about our token. `code` is Bitrix24's; `status` the HTTP status."""

    def __init__(self, code: str, description: str, status: int) -> None:
        super().__init__(code, description)
        self.code = code
        self.status = status


class InstallRefused(Bitrix24Error):
    """An ONAPPINSTALL/ONAPPUPDATE that could not be verified (forged, replayed, for another application,
    domain or portal): answered 403 with `reason`, logged, and nothing stored."""
