"""E-mail over SMTP with aiosmtplib (eXpress ticket-register notifications).

The Message-ID is derived from the idempotency key, so a resend after a crash between send and
record carries the same Message-ID and mail systems can recognise the duplicate.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from ticketflow.notifications.adapters.channels.base import (
    DeliveryFailure,
    PermanentFailure,
    TemporaryFailure,
    snippet,
)
from ticketflow.notifications.domain.model import Channel, OutgoingMessage


@dataclass(frozen=True, slots=True)
class SmtpRelay:
    name: str
    hostname: str
    port: int
    sender: str  # the From address
    username: str | None = None
    password: str | None = None
    start_tls: bool | None = None  # None: upgrade when the server offers STARTTLS
    use_tls: bool = False
    timeout: float = 15.0
    message_id_domain: str = "ticketflow.local"


class EmailChannel:
    """`destination` names the relay; `address` is the recipient's e-mail address."""

    channel = Channel.EMAIL

    def __init__(self, relays: Sequence[SmtpRelay]) -> None:
        self._relays = {r.name: r for r in relays}

    def build(self, relay: SmtpRelay, message: OutgoingMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = relay.sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Date"] = email.utils.formatdate(localtime=False)
        mail["Message-ID"] = f"<{message.key}@{relay.message_id_domain}>"
        mail["Content-Language"] = message.locale
        mail["X-Ticketflow-Idempotency-Key"] = message.key
        mail.set_content(message.body)
        return mail

    def ready(self, message: OutgoingMessage) -> bool:
        return True  # no rate limit of its own

    async def pace(self, message: OutgoingMessage) -> None:
        return None

    async def send(self, message: OutgoingMessage) -> str:
        relay = self._relays.get(message.destination)
        if relay is None:
            raise PermanentFailure(f"email: relay {message.destination!r} is not configured")
        if "@" not in message.address or any(c in message.address for c in "\r\n <>"):
            raise PermanentFailure("email: not an e-mail address")
        mail = self.build(relay, message)
        try:
            await aiosmtplib.send(
                mail,
                hostname=relay.hostname,
                port=relay.port,
                username=relay.username,
                password=relay.password,
                start_tls=relay.start_tls,
                use_tls=relay.use_tls,
                timeout=relay.timeout,
            )
        except aiosmtplib.SMTPException as exc:
            raise _failure(exc) from exc
        except OSError as exc:
            raise TemporaryFailure(f"email: connection error ({type(exc).__name__})") from exc
        return str(mail["Message-ID"])

    async def aclose(self) -> None:
        return None


def _failure(exc: aiosmtplib.SMTPException) -> DeliveryFailure:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        if codes and all(400 <= c < 500 for c in codes):
            return TemporaryFailure(f"email: recipient deferred {codes}")
        return PermanentFailure(f"email: recipient refused {codes}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return PermanentFailure(f"email: authentication failed ({exc.code})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"email: {exc.code} {snippet(exc.message)}"
        return TemporaryFailure(text) if exc.code < 500 else PermanentFailure(text)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return TemporaryFailure(f"email: {type(exc).__name__}")
    return PermanentFailure(f"email: {type(exc).__name__}: {snippet(str(exc))}")
