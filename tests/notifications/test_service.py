"""The service on real PostgreSQL (event store + ledger) against the local platform servers.

Ticket events are appended to the store and read back as the relay would publish them; the service
plans, delivers through the real channel clients and records NotificationDelivered/Failed in the
ticket's notification stream. Redelivered events send nothing new; bad input is a dead letter, an outage
is waited out (the batch comes again), never a dead letter.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from fakes.bitrix24 import FakeBitrix24
from fakes.botx import FakeBotX
from fakes.smtp import FakeSmtp
from fakes.webhook import FakeWebhookReceiver
from support.bitrix24 import BOX_CLIENT_ID, BOX_SECRET_ENV, b24_environment, desks_for, installed_portal
from support.records import FakeRecord, RecordingProducer

from ticketflow.contracts import notification_events as ne
from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope, NewEvent, envelope_encoder
from ticketflow.contracts.ids import new_event_id, notification_stream, sla_stream, ticket_number, ticket_stream
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.outages import Backoff
from ticketflow.messaging.per_key import BatchNotProcessed, PerKeyBatches
from ticketflow.notifications.adapters.channels import ChannelClient
from ticketflow.notifications.adapters.directory import Directory, build_channels, parse_config
from ticketflow.notifications.adapters.rendering import TemplateCatalog
from ticketflow.notifications.adapters.resilience import RetryPolicy
from ticketflow.notifications.app import Handled, Notifications
from ticketflow.notifications.consumer import ticket_events
from ticketflow.notifications.domain.model import Channel, Notification
from ticketflow.notifications.main import make_app

from .letters import dead_letters_sent

pytestmark = pytest.mark.pg

EXPRESS_BOT = uuid.UUID("8dada2c8-67a6-4434-9dec-570d244e78ee")  # deskconfig express.toml
PORTAL = "a1b2c3d4e5f60718293a4b5c6d7e8f90"  # deskconfig bitrix24-box.toml
CHAT = uuid.UUID("6f1d8a0e-3c55-4a7b-9b61-2f8f6f0d6a10")
SECRETS = {"BOT_SECRET": "express-bot-secret-0123456789abcdef", "HOOK_SECRET": "hook"}
DAY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # Tuesday 12:00 Moscow: inside support hours


@dataclass
class Platforms:
    botx: FakeBotX
    bitrix: FakeBitrix24
    smtp: FakeSmtp
    hooks: FakeWebhookReceiver

    def config_toml(self, bitrix_rate: float = 100.0) -> str:
        return f"""
[[express_bots]]
bot_id = "{EXPRESS_BOT}"
cts_url = "{self.botx.base_url}"
secret_env = "BOT_SECRET"

[bitrix24]
rate = {bitrix_rate}
burst = 50

[[smtp_relays]]
name = "register"
hostname = "127.0.0.1"
port = {self.smtp.port}
sender = "support@ticketflow.test"

[[webhooks]]
name = "crm"
url = "{self.hooks.url}"
secret_env = "HOOK_SECRET"

[[desks]]
desk_id = "express"
email_relay = "register"

[[people]]
id = "anna"
name = "Anna"
role = "agent"
locale = "en"
channels = ["email"]
addresses.email = {{ destination = "register", address = "anna@example.test" }}
"""

    def received(self) -> int:
        return len(self.botx.received) + len(self.bitrix.received) + len(self.smtp.received) + len(self.hooks.received)


@asynccontextmanager
async def running_platforms() -> AsyncIterator[Platforms]:
    platforms = Platforms(
        FakeBotX({EXPRESS_BOT: SECRETS["BOT_SECRET"]}),
        FakeBitrix24(member_id=PORTAL, client_id=BOX_CLIENT_ID),
        FakeSmtp(),
        FakeWebhookReceiver(secret=SECRETS["HOOK_SECRET"]),
    )
    servers = [
        platforms.botx.running(),
        platforms.bitrix.running(),
        platforms.smtp.running(),
        platforms.hooks.running(),
    ]
    await asyncio.gather(*(s.__aenter__() for s in servers))
    try:
        yield platforms
    finally:
        await asyncio.gather(*(s.__aexit__(None, None, None) for s in servers))


@asynccontextmanager
async def running_service(
    pool: asyncpg.Pool, platforms: Platforms, catalog: TemplateCatalog | None = None, **options: Any
) -> AsyncIterator[Notifications]:
    config = parse_config(platforms.config_toml())
    portals = await installed_portal(platforms.bitrix, pool)  # as intake installs it
    channels: list[ChannelClient] = build_channels(config, SECRETS, bitrix24=portals)
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, max_retry_after=1)
    try:
        yield make_app(pool, load_desks(), Directory.from_config(config), channels, catalog, retry=retry, **options)
    finally:
        await asyncio.gather(*(c.aclose() for c in channels))


async def append(store: EventStore, *events: Any, at: datetime = DAY) -> list[EventEnvelope]:
    """Append to each event's ticket stream; the stored envelopes, as the relay publishes them."""
    ticket_id = events[0].ticket_id
    stream = ticket_stream(ticket_id)
    head = len(await store.read_stream(stream))
    await store.append(stream, head, [NewEvent(new_event_id(), e, at) for e in events])
    return (await store.read_stream(stream))[head:]


def opened(ticket_id: uuid.UUID, platform: str = "bitrix24", email: str | None = None) -> t.TicketOpened:
    chat = (
        ChatRef("express", str(EXPRESS_BOT), str(CHAT))
        if platform == "express"
        else ChatRef("bitrix24", PORTAL, "chat42")
    )
    desk, track = ("express", "client") if platform == "express" else ("bitrix24-box", "box")
    return t.TicketOpened(
        ticket_id, desk, track, chat, Requester("user-7", "Ivan", "ru", (), email), "Slow portal", "m-1", DAY
    )


def taken(ticket_id: uuid.UUID) -> t.PreflightPassed:
    """Preflight took the ticket: the requester is told it is registered (not on TicketOpened)."""
    return t.PreflightPassed(ticket_id, "installation")


async def registered(service: Notifications, ticket_id: uuid.UUID, *opened_args: Any) -> Handled:
    """Open a ticket and pass its preflight, each event handled; what the PreflightPassed led to."""
    opening, passed = await append(service.store, opened(ticket_id, *opened_args), taken(ticket_id))
    assert (await service.handle(opening)).skipped == "no message for this event"
    return await service.handle(passed)


async def outcomes(store: EventStore, ticket_id: uuid.UUID) -> list[Any]:
    return [e.event for e in await store.read_stream(notification_stream(ticket_id))]


@pytest_asyncio.fixture(loop_scope="session")
async def platforms() -> AsyncIterator[Platforms]:
    async with running_platforms() as running:
        yield running


async def test_lifecycle_messages_reach_the_platforms_once_even_when_every_event_comes_again(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    async with running_service(pool, platforms) as service:
        ticket_id = uuid.uuid4()
        envelopes = await append(
            service.store,
            opened(ticket_id),
            taken(ticket_id),
            t.TicketRouted(ticket_id, "box-l1", "l1", "normal", "rule"),
            t.TicketAssigned(ticket_id, "anna", "round_robin"),
            t.AgentReplied(ticket_id, "anna", "r-1", "Clear the cache, please."),
        )
        for envelope in envelopes:
            await service.handle(envelope)
        # Redelivered: once more in order, and twice at the same time (two consumers after a rebalance).
        for envelope in envelopes:
            await asyncio.gather(service.handle(envelope), service.handle(envelope))

    chat = [(m.dialog_id, m.message) for m in platforms.bitrix.received]
    assert [d for d, _ in chat] == ["chat42"] * 3
    assert "Slow portal" in chat[0][1] and "Anna" in chat[1][1] and "Clear the cache, please." in chat[2][1]
    [mail] = platforms.smtp.received
    assert mail.recipients == ["anna@example.test"] and "Assigned to you" in str(mail.message["Subject"])
    recorded = await outcomes(service.store, ticket_id)
    assert [type(e) for e in recorded] == [ne.NotificationDelivered] * 4
    assert {e.template for e in recorded} == {"ticket_opened", "ticket_assigned", "assigned_to_you", "agent_reply"}


async def test_a_chat_notification_after_the_access_token_expired_is_delivered_not_dead_lettered(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    """Issue 16: Bitrix24 access tokens live about an hour; every chat notification after that was
    dead-lettered as permanent (`expired_token`). Here the token expires during the test."""
    platforms.bitrix.access_ttl = 2.0
    dead = "SELECT count(*) FROM notification_deliveries WHERE status = 'dead'"
    dead_before = await pool.fetchval(dead)
    async with running_service(pool, platforms) as service:
        ticket_id = uuid.uuid4()
        assert (await registered(service, ticket_id)).sent == 1
        renewed = platforms.bitrix.renewed()
        await asyncio.sleep(2.5)
        [reply] = await append(service.store, t.AgentReplied(ticket_id, "anna", "r-1", "Clear the cache, please."))
        handled = await service.handle(reply)
    assert (handled.sent, handled.dead) == (1, 0)
    assert platforms.bitrix.renewed() == renewed + 1
    assert [type(e) for e in await outcomes(service.store, ticket_id)] == [ne.NotificationDelivered] * 2
    assert len(platforms.bitrix.received) == 2
    assert await pool.fetchval(dead) == dead_before


async def test_express_requester_hears_in_the_chat_and_by_register_email(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    async with running_service(pool, platforms) as service:
        ticket_id = uuid.uuid4()
        await registered(service, ticket_id, "express", "ivan@example.test")
    [chat] = platforms.botx.received
    assert (chat.bot_id, chat.chat_id) == (EXPRESS_BOT, CHAT)
    [mail] = platforms.smtp.received
    assert mail.recipients == ["ivan@example.test"]
    assert {e.channel for e in await outcomes(service.store, ticket_id)} == {"express", "email"}


async def test_a_recipient_without_an_address_is_a_dead_letter_and_notification_failed(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    async with running_service(pool, platforms) as service:
        ticket_id = uuid.uuid4()
        for envelope in await append(
            service.store, opened(ticket_id), taken(ticket_id), t.TicketAssigned(ticket_id, "ghost", "manual")
        ):
            await service.handle(envelope)
    assert len(platforms.bitrix.received) == 2  # the requester still hears: registered, assigned
    [failed] = [e for e in await outcomes(service.store, ticket_id) if isinstance(e, ne.NotificationFailed)]
    assert failed.recipient == "ghost" and "has no email address" in failed.reason and failed.permanent
    row = await pool.fetchrow(
        "SELECT status FROM notification_deliveries WHERE idempotency_key = $1", failed.notification_key
    )
    assert row is not None and row["status"] == "dead"


async def test_a_missing_template_variable_is_a_dead_letter_nothing_half_rendered_is_sent(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    broken = {
        locale: {
            "ticket_opened": {"subject": "Ticket {{ ticket_number }}", "body": "{{ not_given }} {{ ticket_title }}"}
        }
        for locale in ("ru", "en")
    }
    async with running_service(pool, platforms, TemplateCatalog(broken)) as service:
        ticket_id = uuid.uuid4()
        handled = await registered(service, ticket_id)
    assert handled.dead == 1 and platforms.received() == 0
    [failed] = await outcomes(service.store, ticket_id)
    assert isinstance(failed, ne.NotificationFailed) and "not_given" in failed.reason


async def test_garbage_answer_is_a_dead_letter_and_the_redrive_cli_sends_it_once(
    pool: asyncpg.Pool, platforms: Platforms, pg_database: str, tmp_path: Path
) -> None:
    platforms.bitrix.fail_next(200, body=b"<html>proxy login</html>")
    async with running_service(pool, platforms) as service:
        ticket_id = uuid.uuid4()
        await registered(service, ticket_id)
    [failed] = await outcomes(service.store, ticket_id)
    assert isinstance(failed, ne.NotificationFailed) and "unrecognised answer" in failed.reason
    assert platforms.bitrix.received == []

    config = tmp_path / "notifications.toml"
    config.write_text(platforms.config_toml(), encoding="utf-8")
    env = {**os.environ, **SECRETS, "TICKETFLOW_NOTIFICATIONS_CONFIG": str(config), "TICKETFLOW_PG_DSN": pg_database,
           **b24_environment(platforms.bitrix, BOX_SECRET_ENV),
           "TICKETFLOW_DESK_CONFIG_DIR": str(desks_for(platforms.bitrix, tmp_path / "desks"))}  # fmt: skip
    listing = await asyncio.create_subprocess_exec(
        Path(sys.executable).with_name("ticketflow"), "--json", "notifications", "dead",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    listed, errors = await asyncio.wait_for(listing.communicate(), 60)
    assert listing.returncode == 0, errors.decode()
    [dead] = [row for row in json.loads(listed) if row["idempotency_key"] == failed.notification_key]
    assert (dead["status"], dead["channel"]) == ("dead", "bitrix24") and "unrecognised answer" in dead["last_error"]
    for _ in range(2):  # the second run finds nothing dead: nothing is sent twice
        cli = await asyncio.create_subprocess_exec(
            Path(sys.executable).with_name("ticketflow"), "notifications", "redrive", "--key", failed.notification_key,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0, output.decode()
    assert len(platforms.bitrix.received) == 1
    assert [type(e) for e in await outcomes(service.store, ticket_id)] == [
        ne.NotificationFailed,
        ne.NotificationDelivered,
    ]


# -- the Kafka handler's side: bad input and outages never escape -----------------------------------


class FlakyApp:
    """Fails with a database outage `failures` times, then handles; records no outcomes."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures, self.calls = failures, 0
        self.error = error or asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")

    async def handle(self, envelope: EventEnvelope, *, record: bool = True) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return Handled(sent=1)

    def batch_outcomes(self) -> Any:
        return SimpleNamespace(add=lambda handled: handled, record=_nothing)


async def _nothing() -> None:
    return None


def events_worker(app: Any, producer: RecordingProducer, attempts: int = 3) -> PerKeyBatches[EventEnvelope]:
    """The `ticket.events` consumer as the service builds it, around `app`, with short pauses."""
    worker = ticket_events(
        cast(Notifications, app), DeadLetterWriter(cast(AIOKafkaProducer, producer), "notifications")
    )
    worker.attempts, worker.backoff = attempts, Backoff(first_s=0.001, cap_s=0.01)
    return worker


async def record_of(pool: asyncpg.Pool) -> FakeRecord:
    ticket_id = uuid.uuid4()
    [envelope] = await append(EventStore(pool), opened(ticket_id))
    return FakeRecord("ticket.events", 0, 0, str(ticket_id).encode(), envelope_encoder.encode(envelope))


@pytest.mark.parametrize(
    ("app", "outage_lasts", "dead", "calls"),
    [
        (FlakyApp(2), False, [], 3),  # an outage shorter than the retries: handled, not dead-lettered
        (FlakyApp(99), True, [], 3),  # a long outage: the batch is given back (uncommitted), never dead-lettered
        (FlakyApp(99, RuntimeError("bug")), False, ["unexpected error"], 1),  # a bug: dead letter, consumer lives
    ],
)
async def test_outages_are_waited_out_bugs_are_dead_letters_and_nothing_escapes(
    pool: asyncpg.Pool, app: FlakyApp, outage_lasts: bool, dead: Sequence[str], calls: int
) -> None:
    producer = RecordingProducer()
    worker = events_worker(app, producer)
    if outage_lasts:
        with pytest.raises(BatchNotProcessed):
            await worker.process([await record_of(pool)])
    else:
        await worker.process([await record_of(pool)])
    assert [letter.reason for letter in dead_letters_sent(producer)] == list(dead)
    assert app.calls == calls


async def test_a_record_that_is_not_an_envelope_is_dead_lettered_with_the_cause() -> None:
    producer = RecordingProducer()
    await events_worker(FlakyApp(0), producer).process([FakeRecord("ticket.events", 0, 3, b"k", b'{"event": "nope"}')])
    [letter] = dead_letters_sent(producer)
    assert (letter.value, letter.reason, letter.original_offset) == (b'{"event": "nope"}', "undecodable", 3)
    assert letter.detail and letter.consumer == "notifications"


async def test_dead_letters_of_a_destination_that_was_down_are_redriven_automatically_once_up(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    platforms.bitrix.fail_next(503, times=3)  # every try of the first delivery (3 tries) fails
    async with running_service(pool, platforms) as service:
        ticket_id = uuid.uuid4()
        assert (await registered(service, ticket_id)).dead == 1
        [failed] = await outcomes(service.store, ticket_id)
        assert isinstance(failed, ne.NotificationFailed) and failed.reason.startswith("gave up after 3 tries")
        assert await service.redrive_temporary(older_than=3600) == 0  # too recent: left alone
        assert await service.redrive_temporary(older_than=0) == 1
        assert await service.redrive_temporary(older_than=0) == 0  # delivered now: never again
    assert len(platforms.bitrix.received) == 1
    assert [type(e) for e in await outcomes(service.store, ticket_id)] == [
        ne.NotificationFailed,
        ne.NotificationDelivered,
    ]


async def test_permanent_causes_wait_for_a_person(pool: asyncpg.Pool, platforms: Platforms) -> None:
    # (an expired or invalid token is not such a cause any more: it is renewed and the message sent)
    platforms.bitrix.fail_next(403, body={"error": "ACCESS_DENIED", "error_description": "Access denied"})
    async with running_service(pool, platforms) as service:
        ticket_id = uuid.uuid4()
        assert (await registered(service, ticket_id)).dead == 1
        assert await service.redrive_temporary(older_than=0) == 0
    assert platforms.bitrix.received == []


async def test_a_batch_with_the_same_record_twice_sends_once_and_records_each_outcome_once(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    async with running_service(pool, platforms) as service:
        first, second = uuid.uuid4(), uuid.uuid4()
        a = await append(service.store, opened(first), taken(first), t.TicketResolved(first, "done", "anna"))
        b = await append(service.store, opened(second), taken(second))
        records = [
            FakeRecord("ticket.events", 0, offset, e.stream_id.encode(), envelope_encoder.encode(e))
            for offset, e in enumerate((*a, *b, a[1], *a))
        ]
        producer = RecordingProducer()
        worker = ticket_events(service, DeadLetterWriter(cast(AIOKafkaProducer, producer), "notifications"))
        await worker.process(records)
        # Lanes do not wait for the ledger's "delivered" writes; the batch settles them before it returns.
        keys = [r["idempotency_key"] for r in await pool.fetch(
            "SELECT idempotency_key FROM notification_deliveries WHERE event_id = ANY($1::text[])",
            [str(e.event_id) for e in (*a, *b)])]  # fmt: skip
        statuses = await pool.fetch(
            "SELECT status FROM notification_deliveries WHERE idempotency_key = ANY($1::text[])", keys
        )
        assert len(keys) == 3 and {r["status"] for r in statuses} == {"delivered"}
        await worker.process(records)  # the whole batch again (not acknowledged before a crash)
        assert producer.sent == []
    assert len(platforms.bitrix.received) == 3
    assert [type(e) for e in await outcomes(service.store, first)] == [ne.NotificationDelivered] * 2
    assert [type(e) for e in await outcomes(service.store, second)] == [ne.NotificationDelivered]


async def test_an_answer_after_the_deadline_is_an_unknown_outcome_the_agent_sees_and_the_consumer_goes_on(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    """Issue 16, item 4, through the consumer as built (`consumer.ticket_events`): BotX posts "registered"
    but answers after the attempt's deadline. One request reached the chat and no second one is sent, not
    even when the batch comes again; NotificationOutcomeUnknown, with the reason, is stored in the ticket's
    notification stream (the agent's view); nothing is dead-lettered; the next ticket's message goes out."""
    platforms.botx.answer_delay = 1.5
    async with running_service(pool, platforms, attempt_deadline=0.3) as service:
        late, next_one = uuid.uuid4(), uuid.uuid4()
        a = await append(service.store, opened(late, "express"), taken(late))
        b = await append(service.store, opened(next_one, "express"), taken(next_one))

        def records(envelopes: Sequence[EventEnvelope]) -> list[FakeRecord]:
            return [FakeRecord("ticket.events", 0, n, e.stream_id.encode(), envelope_encoder.encode(e))
                    for n, e in enumerate(envelopes)]  # fmt: skip

        producer = RecordingProducer()
        worker = ticket_events(service, DeadLetterWriter(cast(AIOKafkaProducer, producer), "notifications"))
        await worker.process(records(a))
        platforms.botx.answer_delay = 0.0
        await worker.process(records([*a, *b]))  # the first batch again (say, not acknowledged), and more
    bodies = [m.body for m in platforms.botx.received]
    assert len(bodies) == 2 and ticket_number(late) in bodies[0] and ticket_number(next_one) in bodies[1], bodies
    [unknown] = await outcomes(service.store, late)
    assert isinstance(unknown, ne.NotificationOutcomeUnknown) and unknown.template == "ticket_opened"
    assert "no answer within 0.3s" in unknown.reason and "check the chat" in unknown.reason
    assert [type(e) for e in await outcomes(service.store, next_one)] == [ne.NotificationDelivered]
    assert producer.sent == []  # not a dead letter: neither the record nor the delivery
    status = await pool.fetchval(
        "SELECT status FROM notification_deliveries WHERE idempotency_key = $1", unknown.notification_key
    )
    assert status == "unknown"


async def test_an_sla_warning_finds_the_assignee_by_reading_the_ticket_stream(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    ticket_id = uuid.uuid4()
    store = EventStore(pool)
    await append(store, opened(ticket_id), t.TicketRouted(ticket_id, "box-l1", "l1", "high", "rule"),
                 t.TicketAssigned(ticket_id, "anna", "round_robin"))  # fmt: skip
    warning = sla.SlaWarning(ticket_id, "first_response", 0.75, DAY, DAY, ("assignee", "lead"))
    await store.append(sla_stream(ticket_id), 0, [NewEvent(new_event_id(), warning, DAY)])
    [envelope] = await store.read_stream(sla_stream(ticket_id))
    async with running_service(pool, platforms) as service:  # a fresh service: nothing cached
        handled = await service.handle(envelope)
    assert handled.sent == 1
    [mail] = platforms.smtp.received
    assert mail.recipients == ["anna@example.test"] and "SLA warning" in str(mail.message["Subject"])


# -- "registered" only once preflight took the ticket --------------------------------------------------


async def test_a_refused_or_referred_requester_reads_only_that_never_registered(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    async with running_service(pool, platforms) as service:
        refused, referred = uuid.uuid4(), uuid.uuid4()
        refusal = t.TicketRefused(refused, "not_portal_admin", "Только админам.")
        referral = t.TicketReferred(referred, "custom", "доработка под заказ")
        envelopes = [
            *await append(service.store, opened(refused), refusal),
            *await append(service.store, opened(referred), referral),
        ]
        for envelope in [*envelopes, *envelopes]:  # and every event again
            await service.handle(envelope)
    texts = [m.message for m in platforms.bitrix.received]
    assert len(texts) == 2 and "Только админам." in texts[0] and "доработка под заказ" in texts[1], texts
    assert not any("зарегистрировано" in text for text in texts), texts
    assert [e.template for e in await outcomes(service.store, refused)] == ["ticket_refused"]
    assert [e.template for e in await outcomes(service.store, referred)] == ["ticket_referred"]


async def test_preflight_passed_on_a_cold_cache_reads_the_ticket_opened_from_the_store_and_sends_once(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    ticket_id = uuid.uuid4()
    opening, passed = await append(EventStore(pool), opened(ticket_id), taken(ticket_id))
    async with running_service(pool, platforms) as service:  # never saw the TicketOpened: nothing cached
        assert (await service.handle(passed)).sent == 1
    async with running_service(pool, platforms) as restarted:  # redelivered after a restart
        assert (await restarted.handle(passed)).sent == 0
    [message] = platforms.bitrix.received
    assert message.dialog_id == "chat42" and "зарегистрировано" in message.message and "Slow portal" in message.message
    [delivered] = await outcomes(EventStore(pool), ticket_id)
    assert isinstance(delivered, ne.NotificationDelivered) and delivered.template == "ticket_opened"
    row = await pool.fetchrow(
        "SELECT event_id, status FROM notification_deliveries WHERE idempotency_key = $1", delivered.notification_key
    )
    assert row is not None and (row["event_id"], row["status"]) == (str(opening.event_id), "delivered")


async def test_a_ticket_told_registered_on_ticket_opened_before_the_change_is_not_told_again(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    async with running_service(pool, platforms) as service:
        ticket_id = uuid.uuid4()
        opening, passed = await append(service.store, opened(ticket_id), taken(ticket_id))
        # What the previous version delivered on TicketOpened: the same key (the TicketOpened's id).
        before = Notification.for_event(
            event_id=str(opening.event_id), channel=Channel.BITRIX24, recipient="requester:user-7",
            destination=PORTAL, address="chat42", template="ticket_opened", locale="ru",
            variables={"ticket_number": "TF-1", "ticket_title": "Slow portal", "outside_hours": False},
        )  # fmt: skip
        assert (await service.deliverer.deliver(before)).sent_now
        handled = await service.handle(passed)
    assert (handled.sent, handled.dead) == (0, 0)
    assert len(platforms.bitrix.received) == 1


async def test_the_ticket_opened_seeds_the_context_so_preflight_passed_needs_no_read(
    pool: asyncpg.Pool, platforms: Platforms
) -> None:
    """Ticket events in order need no store read: the records here are in no stream at all (as the
    load bench produces them), so the message can only come from the context TicketOpened left."""
    ticket_id = uuid.uuid4()
    stream = ticket_stream(ticket_id)
    opening = EventEnvelope(new_event_id(), stream, 1, DAY, 1, opened(ticket_id))
    passed = EventEnvelope(new_event_id(), stream, 2, DAY, 1, taken(ticket_id))
    async with running_service(pool, platforms) as service:
        assert (await service.handle(opening)).sent == 0
        assert (await service.handle(passed)).sent == 1
    assert await service.store.read_stream(stream) == []
    [message] = platforms.bitrix.received
    assert "Slow portal" in message.message
