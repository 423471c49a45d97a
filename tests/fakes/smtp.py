"""A real SMTP server (aiosmtpd) in the running event loop, recording what it accepts.

`rejected` addresses get 550 at RCPT; `fail_next(code)` answers the next DATA with that code
(e.g. 451 to make the client try again later).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


class _Handler:
    def __init__(self, fake: FakeSmtp) -> None:
        self.fake = fake

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.fake.rejected:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fake.data_faults:
            return self.fake.data_faults.popleft()
        content = envelope.original_content or b""
        message: Any = email.message_from_bytes(content, policy=email.policy.default)
        self.fake.received.append(ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class FakeSmtp:
    def __init__(self, *, rejected: Iterable[str] = ()) -> None:
        self.rejected = set(rejected)
        self.received: list[ReceivedMail] = []
        self.data_faults: deque[str] = deque()
        self.port = 0

    def fail_next(self, code: int = 451, times: int = 1) -> None:
        text = "4.3.0 Try again later" if code < 500 else "5.3.0 Refused"
        self.data_faults.extend(f"{code} {text}" for _ in range(times))

    @asynccontextmanager
    async def running(self, port: int = 0) -> AsyncIterator[FakeSmtp]:
        handler = _Handler(self)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="fake-smtp.localhost", loop=loop), "127.0.0.1", port
        )
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()
