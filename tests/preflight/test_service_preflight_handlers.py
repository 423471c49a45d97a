"""The Kafka-facing side on real PostgreSQL: bad input becomes a dead letter with its cause while the
consumer continues, a batch examines its tickets concurrently, racing deliveries store one decision."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import msgspec
import pytest
from preflight_fakes import Certificates, Reply, ServeFactory, healthy_routes
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
from ticketflow.preflight.checks import ChecksConfig
from ticketflow.preflight.handlers import PreflightHandlers
from ticketflow.runtime.kafka import DeadLetters

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def desks() -> DeskRegistry:
    return load_desks()


class RecordedDeadLetters(DeadLetters):
    """Dead letters kept in memory: (topic, reason, headers)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, str]]] = []
        self.sent = 0

    async def send(self, topic: str, key: bytes | None, value: bytes, reason: str, **context: str) -> bool:
        self.records.append((topic, reason, context))
        self.sent += 1
        return True  # written, as DeadLetters.send reports


async def test_bad_input_is_dead_lettered_with_the_cause_and_the_consumer_continues(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig
) -> None:
    service = make_service(pool, desks, config)
    dead = RecordedDeadLetters()
    handlers = PreflightHandlers(dead, service)
    topic = "ticket.events"
    await handlers.on_record(topic, b"k", b"{not json")
    await handlers.on_record(topic, b"k", b'{"event_id": "x"}')
    unknown_desk = await open_ticket(service.store, text="?", desk="no-such-desk", tenant="t1")
    await handlers.on_record(topic, b"k", envelope_encoder.encode(unknown_desk))
    stranger = msgspec.structs.replace(unknown_desk, event_id=uuid.uuid4(), stream_id="ticket-x")
    stranger = msgspec.structs.replace(
        stranger, event=msgspec.structs.replace(unknown_desk.event, ticket_id=uuid.uuid4())
    )
    await handlers.on_record(topic, b"k", envelope_encoder.encode(stranger))
    good = await open_ticket(  # BotX sends no roles: an eXpress sender is an end user of the app
        service.store, text="Не работает вход", roles=(), desk="express", track="client", tenant=CLIENT_BOT
    )
    await handlers.on_record(topic, b"k", envelope_encoder.encode(good))

    reasons = [reason for _, reason, _ in dead.records]
    assert reasons[0].startswith("undecodable envelope") and reasons[1].startswith("undecodable envelope")
    assert reasons[2].startswith("unknown desk 'no-such-desk'")
    assert reasons[3].startswith("unknown ticket")
    assert dead.records[2][2]["event_id"] == str(unknown_desk.event_id)
    assert len(dead.records) == 4 and handlers.outcomes[-1] == "RecordPreflightPassed"


class Record:
    """The fields of an aiokafka ConsumerRecord the handlers read."""

    def __init__(self, envelope: EventEnvelope) -> None:
        self.topic = "ticket.events"
        self.key = envelope.stream_id.encode()
        self.value = envelope_encoder.encode(envelope)


async def test_a_batch_examines_tickets_concurrently_so_a_hanging_portal_holds_only_its_own(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, serve: ServeFactory, certs: Certificates
) -> None:
    hanging_routes = healthy_routes()
    hanging_routes["/pub/"] = Reply(hang=True)  # ends in the check's timeout (1 s here)
    hanging = await serve(certs.valid, hanging_routes)
    healthy = await serve(certs.valid, healthy_routes())
    service = make_service(pool, desks, config)
    handlers = PreflightHandlers(RecordedDeadLetters(), service)
    slow = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=hanging.url())
    fast = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=healthy.url())
    await handlers.on_batch([Record(slow), Record(fast)])

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
