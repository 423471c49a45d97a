"""The world of the journey test: every service a real process on free ports (tests/support/system.py), on
this run's own topics of the shared broker and a fresh database, with the local fake platforms (eXpress
BotX, a Bitrix24 portal with its OAuth server, an SMTP relay for the staff's e-mail), this run's query API
tokens, and a test calendar: the eXpress desk's client support around the clock with minute-scale SLA
targets, so a warning and a breach happen within the test.

Helpers speak as the platforms and people do: `post_botx` (signed with the bot's secret, as BotX posts),
`install_portal` / `post_bitrix24` (form-encoded with the application token, as a portal posts), `act`
(an agent's action through the dashboard with the agent's token, as the page sends it), and `Api` (the
query API's JSON, waiting on the position each answer reports)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fakes.bitrix24 import FakeBitrix24
from intake_payloads import b24_auth, b24_message, botx_message
from pybotx.auth import build_botx_jwt_v2
from support.bitrix24 import desks_for
from support.demo import demo_secrets
from support.system import EXPRESS_BOTS, PUBLIC_BOT, PUBLIC_BOT_HOST, ChatPlatforms, PrivateTopics, System

SERVICES = ("projector", "queries", "intake", "preflight", "routing", "sla", "notifications")
AGENT, AGENT_NAME, AGENT_MAIL = "agent-anna", "Анна Смирнова", "anna@ticketflow.local"
LEAD, LEAD_MAIL = "lead-boris", "boris@ticketflow.local"
B24_APP_TOKEN, B24_AUTHOR_TOKEN = "journey-application-token", "journey-author-access-token"
FIRST_RESPONSE_S, RESOLUTION_S = 60, 1800  # the test calendar's targets (business time = wall time: 24/7)
WARNING = 0.5  # the one warning level before the breach
FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # how a Bitrix24 portal posts its events


def journey_desks(portal: FakeBitrix24, folder: Path) -> Path:
    """The packaged desks (the box desk's portal at the fake's address) with the eXpress desk's client
    support turned into a 24/7 track under SLA: first response in 1 minute (a warning at half of it),
    resolution in 30 minutes, for every priority."""
    desks_for(portal, folder)
    express = folder / "express.toml"
    text = express.read_text(encoding="utf-8")
    for hours in ("08:00-21:00", "10:00-18:00"):  # client-support's weekday, weekend and holiday hours
        text = text.replace(f'"{hours}"', '"00:00-24:00"')
    assert text.count("sla = false") == 1, "the packaged client track changed: adapt the test calendar"
    text = text.replace("sla = false", "sla = true")
    for priority in ("urgent", "high", "normal", "low"):
        text += (
            f'\n[[sla_policies]]\ntrack = "client"\npriority = "{priority}"\n'
            f"first_response_minutes = {FIRST_RESPONSE_S // 60}\nresolution_minutes = {RESOLUTION_S // 60}\n"
            f"warnings = [{WARNING}]\n"
        )
    express.write_text(text, encoding="utf-8")
    return folder


def notifications_config(platforms: ChatPlatforms) -> str:
    """The fakes' accounts, the box desk (its portals come from installs), and the staff: the agent and the
    lead of the eXpress queues by e-mail, with no shift (always on: SLA mail reaches them at any hour)."""
    return (
        platforms.config_toml()
        + f"""
[[desks]]
desk_id = "bitrix24-box"

[[people]]
id = "{AGENT}"
name = "{AGENT_NAME}"
role = "agent"
locale = "ru"
timezone = "Europe/Moscow"
channels = ["email"]
addresses.email = {{ destination = "local", address = "{AGENT_MAIL}" }}

[[people]]
id = "{LEAD}"
name = "Борис Кузнецов"
role = "lead"
locale = "ru"
timezone = "Europe/Moscow"
channels = ["email"]
addresses.email = {{ destination = "local", address = "{LEAD_MAIL}" }}
queues = ["client-l1", "product-requests"]
"""
    )


@dataclass(frozen=True)
class Token:
    token: str
    grant: dict[str, Any]

    @classmethod
    def made(cls, name: str, scope: str, agent: str | None = None) -> Token:
        token = f"tfq_{uuid.uuid4().hex}{uuid.uuid4().hex}"
        grant: dict[str, Any] = {"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(), "scopes": [scope]}
        return cls(token, grant | ({"agent_id": agent} if agent else {}))


@dataclass
class Chat:
    """One eXpress conversation: its chat and its user (who keeps writing in it)."""

    chat: uuid.UUID = field(default_factory=uuid.uuid4)
    user: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass
class Journey:
    system: System
    platforms: ChatPlatforms
    portal: FakeBitrix24
    topics: PrivateTopics
    dsn: str
    bootstrap: str
    lead: Token  # read:*, as a lead's page reads
    anna: Token  # agent:express, the agent's own token
    started: float = field(default_factory=time.monotonic)

    async def post_botx(self, chat: Chat, text: str) -> None:
        """A user's message to the public eXpress bot, as BotX posts it (a JWT signed with the bot's secret)."""
        command = botx_message(text, chat_id=chat.chat, user_huid=chat.user, bot_id=PUBLIC_BOT)
        command["from"]["host"] = PUBLIC_BOT_HOST
        jwt = build_botx_jwt_v2(bot_id=PUBLIC_BOT, bot_host=PUBLIC_BOT_HOST,
                                secret_key=demo_secrets()[EXPRESS_BOTS[PUBLIC_BOT]])  # fmt: skip
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"{self.system['intake'].url}/command", json=command,
                                       headers={"Authorization": f"Bearer {jwt}"})  # fmt: skip
        assert answer.status_code == 202 and answer.json() == {"result": "accepted"}, answer.text

    async def install_portal(self) -> str:
        """The portal installs the application (ONAPPINSTALL, verified by intake with the OAuth server, the
        bot registered on the portal); the bot's id."""
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"{self.system['intake'].url}/bitrix24/events",
                                       content=self.portal.install_form(B24_APP_TOKEN), headers=FORM)  # fmt: skip
        assert answer.status_code == 200, answer.text
        return str(answer.json()["bot_id"])

    async def post_bitrix24(self, bot_id: str, dialog: str, text: str) -> None:
        """The portal administrator's message to the bot (ONIMBOTMESSAGEADD, form-encoded, with the
        application token and the author's own authorisation, as the portal posts it)."""
        author = b24_auth(self.portal.member_id, B24_APP_TOKEN, user_id=dialog, domain=self.portal.domain,
                          access_token=B24_AUTHOR_TOKEN, expires=str(int(time.time()) + 3600))  # fmt: skip
        message_id, member = str(uuid.uuid4().int % 10**9), self.portal.member_id
        form = b24_message(text, dialog_id=dialog, user_id=dialog, message_id=message_id, member_id=member,
                           token=B24_APP_TOKEN, bot_id=bot_id, auth=author)  # fmt: skip
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"{self.system['intake'].url}/bitrix24/events", content=form, headers=FORM)
        assert answer.status_code == 200, answer.text

    async def act(self, token: Token, ticket_id: str, action: str, **form: str) -> int:
        """An agent's action as the dashboard's page sends it (the token in the session cookie, htmx's header,
        a fresh command id in the form); the global position of the last event the command caused."""
        command = uuid.uuid4()
        async with httpx.AsyncClient(base_url=self.system["dashboard"].url, cookies={"tf_token": token.token},
                                     timeout=60) as client:  # fmt: skip
            answer = await client.post(f"/tickets/{ticket_id}/actions/{action}", headers={"HX-Request": "true"},
                                       data={"command_id": str(command), **form})  # fmt: skip
        assert answer.status_code == 200, f"{action}: {answer.status_code} {answer.text[:2000]}"
        connection = await asyncpg.connect(self.dsn)
        try:
            position = await connection.fetchval(
                "SELECT max(position) FROM events WHERE metadata->>'causation_id' = $1", str(command)
            )
        finally:
            await connection.close()
        assert position is not None, f"{action}: 200, yet no event names command {command} as its cause"
        return int(position)

    async def page(self, token: Token, path: str) -> str:
        """A dashboard page as the agent's browser gets it (the token in the session cookie)."""
        async with httpx.AsyncClient(base_url=self.system["dashboard"].url, cookies={"tf_token": token.token},
                                     timeout=30) as client:  # fmt: skip
            answer = await client.get(path)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:2000]}"
        return answer.text

    async def dead_letters(self) -> dict[str, int]:
        """How many records each of this run's dead-letter topics holds."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            partitions = [TopicPartition(t, 0) for t in self.topics.dead_letter_topics]
            ends = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
        return {tp.topic: offset for tp, offset in ends.items() if offset}

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.0f}s"


@dataclass
class Api:
    """The query API as a dashboard reads it, with one token. `until` long-polls: each read asks for the
    position after the last one the API reported (`min_position`, bounded by `wait_ms`), so the test waits
    on the read models moving, never on a fixed sleep."""

    url: str
    token: Token

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.get(f"{self.url}/v1{path}", params=params,
                                      headers={"Authorization": f"Bearer {self.token.token}"})  # fmt: skip
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
        assert int(answer.headers["X-Position"]) == answer.json()["position"]
        body: dict[str, Any] = answer.json()
        return body

    async def until(
        self, path: str, check: Callable[[dict[str, Any]], object], what: str, timeout_s: float = 90, **params: Any
    ) -> dict[str, Any]:
        deadline, position = time.monotonic() + timeout_s, 0
        while True:
            waiting = {"min_position": position + 1, "wait_ms": 2000} if position else {}
            body = await self.get(path, **params, **waiting)
            if check(body):
                return body
            position = max(position, body["position"])
            if time.monotonic() > deadline:
                pytest.fail(f"not within {timeout_s:.0f}s: {what}; the last answer of {path}:\n{body}")

    async def at(self, path: str, position: int, **params: Any) -> dict[str, Any]:
        """Read one's own write: the answer once the read models include `position` (the API says it did)."""
        body = await self.get(path, **params, min_position=position, wait_ms=10000)
        assert body["reached"] is True and body["position"] >= position, body
        return body

    async def ticket(
        self, ticket_id: str, check: Callable[[dict[str, Any]], object], what: str, timeout_s: float = 90
    ) -> dict[str, Any]:
        """The ticket's document (`GET /v1/tickets/{id}`) once `check` holds for it."""
        body = await self.until(f"/tickets/{ticket_id}", lambda b: check(b["ticket"]), what, timeout_s)
        ticket: dict[str, Any] = body["ticket"]
        return ticket

    async def ticket_at(self, ticket_id: str, position: int) -> dict[str, Any]:
        ticket: dict[str, Any] = (await self.at(f"/tickets/{ticket_id}", position))["ticket"]
        assert ticket["position"] >= position, ticket  # the action's event is this ticket's: applied
        return ticket

    async def ticket_id(self, marker: str, desk: str) -> str:
        """The one ticket whose conversation holds the word `marker` (the list's text search)."""
        body = await self.until("/tickets", lambda b: b["tickets"], f"a ticket with {marker!r}", q=marker, desk=desk)
        [ticket] = body["tickets"]
        return str(ticket["ticket_id"])
