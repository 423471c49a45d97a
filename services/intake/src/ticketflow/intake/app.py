"""Intake's application service: what is recorded for a chat message or an agent's command, and how.

- `accept`: a webhook's message, made durable before the answer: published to `chat.inbound` (the
  default), or recorded at once (`TICKETFLOW_INTAKE_ACCEPT=store`).
- `record`: the one place that loads, decides and appends for chat messages. A batch is ONE
  transaction (`adapters/intake_tables.py`): its conversations are locked, messages already recorded are
  skipped, each conversation's ticket is loaded, every message is decided (`domain/messages.py`), and
  the events, intake's rows and the queued replies are written together. A conflict (preflight or
  routing appended to the ticket meanwhile, a deadlock) reruns the whole batch.
- `record_inbound`: `chat.inbound` messages, recorded in lanes (concurrent transactions over disjoint
  conversations); one the store cannot take, or whose tenant no desk serves, is dead-lettered and the
  rest of the batch is recorded.
- `apply_command`: an agent's command from `ticket.commands` (StartWork, ReplyAsAgent, ...,
  LinkKnownProblem) through `ticketflow.eventstore.commands.execute`, with event ids from the command id.
- `pause_desk` / `resume_desk` (operators' commands): a paused desk's messages are held
  (`adapters/desk_pauses.py`), and recorded in the order they came when it resumes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from ticketflow.contracts.chat import ChatMessage
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import EventMetadata
from ticketflow.contracts.ids import deterministic_event_id, new_ticket_id, ticket_stream
from ticketflow.eventstore.commands import execute
from ticketflow.eventstore.errors import ConcurrencyError, UnstorableEvent
from ticketflow.eventstore.store import Store
from ticketflow.intake.adapters.desk_pauses import DeskPauses
from ticketflow.intake.adapters.intake_tables import Conversation, IntakeTables, RecordingBatch
from ticketflow.intake.domain.agent_commands import InvalidCommand, prepare
from ticketflow.intake.domain.messages import DeskRoute, Outcome, conversation_key, decide_message
from ticketflow.intake.metrics import Metrics
from ticketflow.intake.tenants import Tenants
from ticketflow.lifecycle import IllegalTransition, Status, decide, evolve, initial_state
from ticketflow.messaging import tracing
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.records import Record

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8  # a batch rerun after a conflict, at most
CONFLICTS = (ConcurrencyError, asyncpg.DeadlockDetectedError, asyncpg.UniqueViolationError)
MIN_LANE = 250  # messages per concurrent transaction, at least
YIELD_EVERY = 50  # messages decided between two yields to the event loop (~2 ms of CPU)
Inbound = tuple[Record, ChatMessage]  # a chat.inbound record and its decoded message
Traces = Mapping[str, str]  # idempotency key -> the W3C traceparent its events carry (where one came)
NO_TRACES: Traces = {}


@dataclass(frozen=True)
class Recorded:
    idempotency_key: str
    outcome: Outcome
    ticket_id: uuid.UUID | None


class InboundTopic(Protocol):
    """Where `accept` makes a webhook's message durable: `chat.inbound` (adapters/chat_inbound.py)."""

    async def publish(self, message: ChatMessage) -> None: ...


class UnknownTenant(LookupError):
    """No desk serves this (platform, tenant): a webhook answers 403; a `chat.inbound` record is
    dead-lettered."""


class CommandRejected(ValueError):
    """An agent's command intake will not apply as sent (invalid, unknown ticket, refused by the ticket's
    state, unstorable): dead-lettered with this message as the detail. Never an outage."""


class Intake:
    def __init__(
        self,
        tenants: Tenants,
        events: Store,
        tables: IntakeTables,
        metrics: Metrics,
        *,
        inbound: InboundTopic | None = None,
        dead_letters: DeadLetterWriter | None = None,
        lanes: int = 4,
        pauses: DeskPauses | None = None,
    ) -> None:
        self.tenants = tenants
        self.events = events  # agents' commands go through `execute` on it
        self.tables = tables  # chat messages: the batch path (intake's rows and bulk appends)
        self.metrics = metrics
        self.inbound = inbound  # None: a webhook's message is recorded before the answer (store mode)
        self.dead_letters = dead_letters  # chat.inbound's (consumer "intake")
        self.lanes = lanes
        self.pauses = pauses  # None: no desk can be paused (tests of other things)
        self._pausing = asyncio.Lock()  # holding a message and resuming its desk never interleave

    # -- webhooks ------------------------------------------------------------------------------------

    async def accept(self, message: ChatMessage) -> None:
        """Make a webhook's (normalised) message durable. Raises `UnknownTenant`; in store mode also
        `UnstorableEvent`; an outage (Kafka, PostgreSQL) propagates: nothing was accepted."""
        if self.tenants.route(message.platform, message.tenant_id) is None:
            raise UnknownTenant(f"no desk for {message.platform} tenant {message.tenant_id!r}")
        if self.inbound is not None:
            await self.inbound.publish(message)  # trace context in its headers; a paused desk's: held when consumed
        elif not await self._held([message]):
            traceparent, _ = tracing.current()
            await self.record([message], {message.idempotency_key(): traceparent} if traceparent else NO_TRACES)
        self.metrics.inc("ticketflow_intake_accepted", platform=message.platform)

    # -- chat messages: load, decide, append ---------------------------------------------------------

    async def record(self, messages: Sequence[ChatMessage], traces: Traces = NO_TRACES) -> list[Recorded]:
        """Record a batch (in order) in one transaction. Returns one `Recorded` per distinct idempotency
        key. Raises `UnknownTenant` or `UnstorableEvent` for a message that spoils the batch. A message's
        events carry its trace context from `traces`."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self.tables.batch() as batch:
                    return await self._record_on(batch, messages, traces)
            except CONFLICTS:
                if attempt == MAX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _record_on(
        self, batch: RecordingBatch, messages: Sequence[ChatMessage], traces: Traces
    ) -> list[Recorded]:
        unique: dict[str, tuple[str, ChatMessage]] = {}  # idempotency key -> (conversation key, message)
        for m in messages:
            key = m.idempotency_key()
            if key not in unique:
                unique[key] = (conversation_key(m), m)
        fresh, seen = await batch.claim(unique)
        results = [Recorded(k, Outcome.DUPLICATE, None) for k in seen]
        if not fresh:
            return results
        conversations = await batch.load(fresh, self._route)
        for n, (key, ckey, message) in enumerate(fresh, start=1):
            results.append(self._decide(batch, key, message, conversations[ckey], traces.get(key)))
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the webhooks sharing this event loop answer meanwhile
        await batch.write(conversations)
        return results

    def _route(self, message: ChatMessage) -> DeskRoute:
        route = self.tenants.route(message.platform, message.tenant_id)
        if route is None:
            raise UnknownTenant(f"no desk for {message.platform} tenant {message.tenant_id!r}")
        return route

    def _decide(
        self, batch: RecordingBatch, key: str, message: ChatMessage, conv: Conversation, traceparent: str | None
    ) -> Recorded:
        decision = decide_message(
            message,
            conv.route,
            conv.state,
            new_ticket_id=new_ticket_id,
            first_in_conversation=not conv.known and conv.seen == 0,
        )
        conv.seen += 1
        ticket_id = decision.ticket_id
        if decision.events and ticket_id is not None:
            if decision.opened:
                conv.opens(ticket_id)
            batch.stage_events(conv, key, decision.events, message.received_at, traceparent)
            state = conv.state
            assert state is not None and ticket_id == conv.ticket_id
            for event in decision.events:
                state = evolve(state, event)
            conv.state = state
        batch.stage_recorded(key, conv.key, ticket_id, decision.outcome.value, message)
        for reply in decision.replies:
            batch.stage_reply(key, reply, traceparent)
        return Recorded(key, decision.outcome, ticket_id)

    async def record_in_lanes(self, messages: Sequence[ChatMessage], traces: Traces = NO_TRACES) -> list[Recorded]:
        """Record a large batch as `lanes` concurrent transactions over disjoint sets of conversations
        (so PostgreSQL works on one lane while Python decides the next); order within a conversation holds.
        A small batch (a webhook-paced consumer sees tens of records per poll) stays one transaction: each
        transaction costs PostgreSQL ~8 statements and a commit whatever its size."""
        lanes = max(1, min(self.lanes, len(messages) // MIN_LANE))
        if lanes == 1:
            return await self.record(messages, traces)
        split: list[list[ChatMessage]] = [[] for _ in range(lanes)]
        for message in messages:
            split[hash(conversation_key(message)) % len(split)].append(message)
        done = await asyncio.gather(*(self.record(part, traces) for part in split if part))
        return [r for part in done for r in part]

    # -- chat.inbound --------------------------------------------------------------------------------

    async def record_inbound(self, items: list[Inbound]) -> None:
        """Record decoded `chat.inbound` messages; dead-letter those no desk serves, and, should one
        spoil its batch's transaction, that one (the others are recorded one by one). A record's
        `traceparent` header goes into the metadata of the events its message causes."""
        served: dict[tuple[str, str], bool] = {}  # (platform, tenant) -> a desk serves it (asked once a call)
        good: list[Inbound] = []
        for record, message in items:
            tenant = (message.platform, message.tenant_id)
            ok = served.get(tenant)
            if ok is None:
                ok = served[tenant] = self.tenants.route(*tenant) is not None
            if ok:
                good.append((record, message))
            else:
                await self.dead_letter(record, "unknown_tenant", f"{message.platform}:{message.tenant_id}")
        if self.pauses is not None and self.pauses.paused:
            held = await self._held([m for _, m in good])
            good = [(record, m) for record, m in good if m.idempotency_key() not in held]
        if not good:
            return
        traces: dict[str, str] = {}
        for record, message in good:
            traceparent = tracing.header(record)
            if traceparent is not None:
                traces[message.idempotency_key()] = traceparent
        try:
            results = await self.record_in_lanes([m for _, m in good], traces)
        except (UnknownTenant, UnstorableEvent):
            results = await self._one_by_one(good, traces)
        outcomes: dict[str, int] = {}
        for result in results:
            outcome = result.outcome.value
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        for outcome, count in outcomes.items():
            self.metrics.inc("ticketflow_intake_processed", count, outcome=outcome)

    async def _one_by_one(self, good: list[Inbound], traces: Traces) -> list[Recorded]:
        results = []
        for record, message in good:
            try:
                results += await self.record([message], traces)
            except UnknownTenant as exc:
                await self.dead_letter(record, "unknown_tenant", str(exc))
            except UnstorableEvent as exc:
                await self.dead_letter(record, "unstorable", str(exc))
        return results

    async def _held(self, messages: Sequence[ChatMessage]) -> set[str]:
        """Hold the messages of paused desks; returns their idempotency keys."""
        if self.pauses is None or not self.pauses.paused:
            return set()
        async with self._pausing:
            routes = [(self.tenants.route(m.platform, m.tenant_id), m) for m in messages]
            held = [(route.desk_id, m) for route, m in routes if route and route.desk_id in self.pauses.paused]
            if held:
                await self.pauses.hold(held)
        return {m.idempotency_key() for _, m in held}

    def desk_ids(self) -> set[str]:
        t = self.tenants
        desks = [b.desk for b in t.express.values()] + [p.desk for p in t.bitrix24.values()]
        return {*desks, *(g.desk for g in t.generic.values())}

    async def pause_desk(self, desk_id: str, actor: str, command_id: str) -> None:
        assert self.pauses is not None
        async with self._pausing:
            await self.pauses.pause(desk_id, actor, command_id)

    async def resume_desk(self, desk_id: str) -> tuple[int, int]:
        """Record the desk's held messages in the order they came, then lift the pause; returns how many
        were recorded, and how many could not be (no desk serves their tenant any more, unstorable)."""
        assert self.pauses is not None
        recorded = failed = 0
        async with self._pausing:
            while held := await self.pauses.held(desk_id):
                try:
                    await self.record_in_lanes([m for _, m in held])
                except (UnknownTenant, UnstorableEvent):
                    for _, message in held:
                        try:
                            await self.record([message])
                        except (UnknownTenant, UnstorableEvent) as exc:
                            failed += 1
                            log.warning("held message %s not recorded: %s", message.idempotency_key(), exc)
                recorded += len(held)
                await self.pauses.release([held_id for held_id, _ in held])
            await self.pauses.resume(desk_id)
        return recorded - failed, failed

    async def reject_undecodable(self, undecodable: list[tuple[Record, str]]) -> None:
        """`chat.inbound` records that are not a chat message: dead letters, in order."""
        for record, detail in undecodable:
            await self.dead_letter(record, "invalid_record", detail)

    async def dead_letter(self, record: Record, reason: str, detail: str) -> None:
        """`chat.inbound`'s dead letter (reason: invalid_record, unknown_tenant, unstorable), counted by the
        writer (`ticketflow_dead_letters_total`)."""
        assert self.dead_letters is not None, "consuming chat.inbound needs a dead-letter writer"
        await self.dead_letters.send(record, reason, detail)

    # -- agents' commands ----------------------------------------------------------------------------

    async def apply_command(self, envelope: CommandEnvelope) -> bool:
        """Apply an agent's command; True when it appended events (False: another service's command, a
        redelivery, or nothing to do). Raises `CommandRejected`; an outage propagates (retried)."""
        try:
            command = prepare(envelope)
        except InvalidCommand as invalid:
            raise CommandRejected(f"invalid: {invalid}") from invalid
        if command is None:
            return False
        stream = ticket_stream(command.ticket_id)
        metadata = EventMetadata(  # the command's consumer span (ticketflow.messaging.per_key), else its own
            correlation_id=envelope.correlation_id, causation_id=envelope.command_id,
            traceparent=tracing.current()[0] or envelope.traceparent,
        )  # fmt: skip
        try:
            decided = await execute(
                self.events, stream, command, decide, evolve, initial_state(),
                command_id=envelope.command_id, metadata=metadata,
            )  # fmt: skip
        except IllegalTransition as refused:
            if refused.status is Status.NEW:
                raise CommandRejected(f"unknown ticket {command.ticket_id}: {refused}") from refused
            if await self._already_applied(stream, envelope):
                return False  # redelivered after it was applied: the state moved on
            raise CommandRejected(str(refused)) from refused
        except UnstorableEvent as unstorable:  # a value PostgreSQL refuses: retrying cannot help
            raise CommandRejected(f"unstorable: {unstorable}") from unstorable
        return decided.result is not None and not decided.result.already_stored

    async def _already_applied(self, stream: str, envelope: CommandEnvelope) -> bool:
        first = deterministic_event_id(envelope.command_id, 0)
        return any(e.event_id == first for e in await self.events.read_stream(stream))
