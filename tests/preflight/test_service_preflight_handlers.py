"""The consumer's worker on real PostgreSQL (no broker: records are handed to it as the subscriber does):
bad input becomes a dead letter with its cause while the rest goes on, a batch examines its tickets
concurrently, a database outage never dead-letters, racing deliveries store one decision."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import msgspec
import pytest
from preflight_fakes import Certificates, Reply, ServeFactory, healthy_routes
from support.records import FakeRecord, RecordingProducer
from test_service_preflight import (
    CLIENT_BOT,
    PRODUCT_ERROR,
    customer_says,
    events_of,
    make_service,
    open_ticket,
    ticket_of,
)

from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import EventEnvelope, envelope_encoder
from ticketflow.deskconfig import DeskRegistry, load_desks
from ticketflow.messaging.dead_letters import DeadLetter, DeadLetterWriter
from ticketflow.messaging.outages import Backoff
from ticketflow.messaging.per_key import BatchNotProcessed
from ticketflow.preflight.adapters.checks import ChecksConfig
from ticketflow.preflight.consumer import worker

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def desks() -> DeskRegistry:
    return load_desks()


def dead_letters_of(producer: RecordingProducer) -> list[DeadLetter]:
    return [DeadLetter.of(FakeRecord("t.dlq", 0, n, s["key"], s["value"], 0, s["headers"]))
            for n, s in enumerate(producer.sent)]  # fmt: skip


def record(value: bytes, offset: int = 0, key: bytes = b"k") -> FakeRecord:
    return FakeRecord("ticket.events", 0, offset, key, value)


async def test_bad_input_is_dead_lettered_with_the_cause_and_the_consumer_continues(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig
) -> None:
    service = make_service(pool, desks, config)
    producer = RecordingProducer()
    events = worker(service, DeadLetterWriter(producer, "preflight"), 64)  # type: ignore[arg-type]
    unknown_desk = await open_ticket(service.store, text="?", desk="no-such-desk", tenant="t1")
    stranger = msgspec.structs.replace(unknown_desk, event_id=uuid.uuid4(), stream_id="ticket-x")
    stranger = msgspec.structs.replace(
        stranger, event=msgspec.structs.replace(unknown_desk.event, ticket_id=uuid.uuid4())
    )
    good = await open_ticket(  # BotX sends no roles: an eXpress sender is an end user of the app
        service.store, text="Не работает вход", roles=(), desk="express", track="client", tenant=CLIENT_BOT
    )
    await events.process([
        record(b"{not json", 0), record(b'{"event_id": "x"}', 1), record(envelope_encoder.encode(unknown_desk), 2),
        record(envelope_encoder.encode(stranger), 3), record(envelope_encoder.encode(good), 4),
    ])  # fmt: skip

    letters = dead_letters_of(producer)
    assert [letter.reason for letter in letters] == ["undecodable", "undecodable", "rejected", "rejected"]
    assert letters[2].detail.startswith("unknown desk 'no-such-desk'")
    assert letters[3].detail.startswith("unknown ticket")
    assert letters[2].context["event-id"] == str(unknown_desk.event_id) and letters[2].consumer == "preflight"
    assert any(isinstance(ev, e.PreflightPassed) for ev in await events_of(service.store, ticket_of(good)))


async def test_a_database_outage_gives_the_batch_back_and_dead_letters_nothing(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(pool, desks, config)
    producer = RecordingProducer()
    events = worker(service, DeadLetterWriter(producer, "preflight"), 64)  # type: ignore[arg-type]
    events.backoff = Backoff(first_s=0.001, cap_s=0.01)
    good = await open_ticket(
        service.store, text="Не работает вход", roles=(), desk="express", track="client", tenant=CLIENT_BOT
    )

    async def database_away(*args: object, **kwargs: object) -> object:
        raise OSError("connection refused")

    with monkeypatch.context() as away:
        away.setattr(service.store, "read_stream", database_away)
        with pytest.raises(BatchNotProcessed):
            await events.process([record(envelope_encoder.encode(good))])
    assert producer.sent == []  # a valid record is never dead-lettered for an outage
    await events.process([record(envelope_encoder.encode(good))])  # redelivered after the outage
    assert any(isinstance(ev, e.PreflightPassed) for ev in await events_of(service.store, ticket_of(good)))


def envelope_record(envelope: EventEnvelope, offset: int) -> FakeRecord:
    return FakeRecord("ticket.events", 0, offset, envelope.stream_id.encode(), envelope_encoder.encode(envelope))


async def test_a_batch_examines_tickets_concurrently_so_a_hanging_portal_holds_only_its_own(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, serve: ServeFactory, certs: Certificates
) -> None:
    hanging_routes = healthy_routes()
    hanging_routes["/pub/"] = Reply(hang=True)  # ends in the check's timeout (1 s here)
    hanging = await serve(certs.valid, hanging_routes)
    healthy = await serve(certs.valid, healthy_routes())
    service = make_service(pool, desks, config)
    events = worker(service, DeadLetterWriter(RecordingProducer(), "preflight"), 64)  # type: ignore[arg-type]
    slow = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=hanging.url())
    fast = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=healthy.url())
    await events.process([envelope_record(slow, 0), envelope_record(fast, 1)])

    slow_decision = (await service.store.read_stream(slow.stream_id))[-1]
    fast_decision = (await service.store.read_stream(fast.stream_id))[-1]
    assert isinstance(slow_decision.event, e.PreflightFailed)
    assert next(check for check in slow_decision.event.checks if not check.passed).reason == "timeout"
    assert isinstance(fast_decision.event, e.PreflightPassed)
    assert fast_decision.position is not None and slow_decision.position is not None
    assert fast_decision.position < slow_decision.position  # the later ticket did not wait for the slow one


async def test_two_racing_deliveries_of_one_recheck_store_one_decision(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, serve: ServeFactory, certs: Certificates
) -> None:
    routes = healthy_routes()
    routes["/pub/"] = Reply(status=403, body=b"Forbidden")
    server = await serve(certs.valid, routes)
    service = make_service(pool, desks, config)
    opened = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=server.url())
    assert await service.handle(opened) == "RecordPreflightFailed"
    routes["/pub/"] = Reply(body=b"<html>public</html>")
    recheck = await customer_says(service.store, ticket_of(opened), "/recheck", "r1")
    await asyncio.gather(service.handle(recheck), service.handle(recheck), service.handle(recheck))
    kinds = [type(ev).__name__ for ev in await events_of(service.store, ticket_of(opened))]
    assert kinds == ["TicketOpened", "PreflightFailed", "CustomerMessageAdded", "PreflightPassed"]
