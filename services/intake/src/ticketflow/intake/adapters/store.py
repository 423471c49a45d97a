"""Recording messages: intake's tables and the ticket events in ONE transaction per batch.

Exactly one effect per platform message:
- every conversation in the batch is locked first (`pg_advisory_xact_lock`, keys in sorted order, so
  two batches never deadlock), which serialises two different first messages of one conversation;
- under that lock, keys already in `intake_messages` are skipped; the new ones are inserted in the same
  transaction as the events (primary key = idempotency key: the constraint is the last word);
- event ids are derived from the idempotency key, so a retried append is a no-op in the store too.
A `ConcurrencyError` (preflight or routing appended to the ticket meanwhile) reruns the whole batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from asyncpg.pgproto.pgproto import UUID as PgUUID

from ticketflow.contracts.chat import ChatMessage
from ticketflow.contracts.envelope import EventMetadata, NewEvent
from ticketflow.contracts.ids import new_ticket_id, ticket_stream
from ticketflow.contracts.ticket_events import TicketEvent
from ticketflow.eventstore.bulk import BulkAppender
from ticketflow.eventstore.errors import UNSTORABLE_CHARACTER_ERRORS, ConcurrencyError, UnstorableEvent
from ticketflow.eventstore.store import AppendRequest, EventStore
from ticketflow.intake.domain import DeskRoute, Outcome, conversation_key, decide_message
from ticketflow.lifecycle import TicketState, evolve, fold

MAX_ATTEMPTS = 8

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k"
_SEEN = "SELECT idempotency_key FROM intake_messages WHERE idempotency_key = ANY($1::text[])"
_CONVERSATIONS = "SELECT conversation_key, ticket_id FROM intake_conversations WHERE conversation_key = ANY($1::text[])"
# The tail of each ticket stream after the version this process already folded (0: all of it).
# An index probe per stream: as a plain join (or a LATERAL subquery, which the planner flattens into one)
# PostgreSQL chose a hash join over a sequential scan of the whole events table: 8 ms per batch at
# 50,000 events, growing with history. OFFSET 0 keeps the subquery from being flattened.
_READ_TAILS = """
SELECT e.position, e.transaction_id::text AS transaction_id, e.stream_id, e.stream_version, e.event_id,
       e.event_type, e.schema_version, e.data::text AS data, e.metadata::text AS metadata, e.occurred_at
FROM unnest($1::text[], $2::int[]) AS u(stream_id, after)
CROSS JOIN LATERAL (
    SELECT * FROM events WHERE events.stream_id = u.stream_id AND events.stream_version > u.after OFFSET 0
) e
ORDER BY e.stream_id, e.stream_version
"""
STATES_KEPT = 200_000
MIN_LANE = 250  # messages per concurrent transaction, at least
YIELD_EVERY = 50  # messages decided between two yields to the event loop (~2 ms of CPU)
_UPSERT_CONVERSATIONS = """
INSERT INTO intake_conversations AS c
    (conversation_key, platform, tenant_id, conversation_id, ticket_id, tickets_opened)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::int[])
ON CONFLICT (conversation_key) DO UPDATE SET
    ticket_id = EXCLUDED.ticket_id,
    tickets_opened = c.tickets_opened + EXCLUDED.tickets_opened,
    updated_at = now()
"""
_INSERT_MESSAGES = """
INSERT INTO intake_messages (idempotency_key, conversation_key, ticket_id, outcome, delivery_id, received_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[])
"""
_INSERT_REPLIES = """
INSERT INTO intake_replies (idempotency_key, platform, tenant_id, conversation_id, reason, body)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
"""

RouteLookup = Callable[[ChatMessage], DeskRoute | None]


@dataclass(frozen=True)
class Recorded:
    idempotency_key: str
    outcome: Outcome
    ticket_id: uuid.UUID | None


@dataclass
class _Conversation:
    key: str
    message: ChatMessage
    route: DeskRoute
    ticket_id: uuid.UUID | None
    stream: str | None  # ticket_stream(ticket_id), kept (str(UUID) costs ~1 µs a message)
    state: TicketState | None
    known: bool
    opened: int = 0
    seen: int = 0


@dataclass
class _Batch:
    appends: dict[str, tuple[int, list[NewEvent], EventMetadata]] = field(default_factory=dict)
    messages: list[tuple[str, str, uuid.UUID | None, str, str | None, Any]] = field(default_factory=list)
    replies: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    results: list[Recorded] = field(default_factory=list)


def _event_id(idempotency_key: str, n: int) -> uuid.UUID:
    """The n-th event caused by a platform message: the same on every retry, so a repeated append is a
    no-op in the store. blake2b with UUIDv8 bits (uuid.uuid5 costs ~4x more; this runs per event).
    asyncpg's UUID is a `uuid.UUID` built in C (0.1 µs instead of 1.3 µs) that asyncpg sends as is."""
    digest = bytearray(hashlib.blake2b(f"{idempotency_key}#{n}".encode(), digest_size=16).digest())
    digest[6] = (digest[6] & 0x0F) | 0x80
    digest[8] = (digest[8] & 0x3F) | 0x80
    event_id: uuid.UUID = PgUUID(bytes(digest))
    return event_id


class UnroutableMessage(ValueError):
    """No desk serves this (platform, tenant): the caller dead-letters it."""


class IntakeStore:
    def __init__(self, pool: asyncpg.Pool, events: EventStore, route: RouteLookup) -> None:
        self.pool = pool
        self.events = events
        self.route = route
        self.bulk = BulkAppender(events.codec)
        # Folded ticket states by stream. Events are immutable, so a state at version v plus the
        # events after v is the current state: only the tail is read, never the whole history again.
        self._states: dict[str, TicketState] = {}

    async def record_in_lanes(self, messages: Sequence[ChatMessage], lanes: int) -> list[Recorded]:
        """Record a large batch as `lanes` concurrent transactions over disjoint sets of conversations
        (so PostgreSQL works on one lane while Python decides the next); order within a conversation holds.
        A small batch (a webhook-paced consumer sees tens of records per poll) stays one transaction: each
        transaction costs PostgreSQL ~8 statements and a commit whatever its size."""
        lanes = max(1, min(lanes, len(messages) // MIN_LANE))
        if lanes == 1:
            return await self.record(messages)
        split: list[list[ChatMessage]] = [[] for _ in range(lanes)]
        for message in messages:
            split[hash(conversation_key(message)) % len(split)].append(message)
        done = await asyncio.gather(*(self.record(part) for part in split if part))
        return [r for part in done for r in part]

    async def record(self, messages: Sequence[ChatMessage]) -> list[Recorded]:
        """Record a batch (in order). Returns one `Recorded` per distinct idempotency key."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                folded: dict[str, TicketState] = {}
                async with self.pool.acquire() as conn, conn.transaction():
                    results = await self._record_on(conn, messages, folded)
                self._remember(folded)  # only after the commit: a rolled-back state must not be cached
                return results
            except (ConcurrencyError, asyncpg.DeadlockDetectedError, asyncpg.UniqueViolationError):
                if attempt == MAX_ATTEMPTS:
                    raise
            except UNSTORABLE_CHARACTER_ERRORS as exc:
                # A value of intake's own rows PostgreSQL refuses (normalisation leaves none known): never
                # retried as an outage, so the caller can set the message aside and record the rest.
                raise UnstorableEvent(f"intake's rows for this batch cannot be stored: {exc!r}") from exc
        raise AssertionError("unreachable")

    def _remember(self, folded: dict[str, TicketState]) -> None:
        for stream, state in folded.items():
            self._states.pop(stream, None)
            self._states[stream] = state
        while len(self._states) > STATES_KEPT:
            self._states.pop(next(iter(self._states)))

    async def _record_on(
        self, conn: Any, messages: Sequence[ChatMessage], folded: dict[str, TicketState]
    ) -> list[Recorded]:
        unique: dict[str, tuple[str, ChatMessage]] = {}  # idempotency key -> (conversation key, message)
        for m in messages:
            key = m.idempotency_key()
            if key not in unique:
                unique[key] = (conversation_key(m), m)
        await conn.execute(_LOCK, sorted({ckey for ckey, _ in unique.values()}))
        seen = {r["idempotency_key"] for r in await conn.fetch(_SEEN, list(unique))}
        fresh = [(k, ckey, m) for k, (ckey, m) in unique.items() if k not in seen]
        batch = _Batch(results=[Recorded(k, Outcome.DUPLICATE, None) for k in unique if k in seen])
        if not fresh:
            return batch.results
        conversations = await self._load(conn, fresh)
        for n, (key, ckey, message) in enumerate(fresh, start=1):
            self._decide(key, message, conversations[ckey], batch)
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the webhooks sharing this event loop answer meanwhile
        await self._write(conn, conversations, batch)
        for conv in conversations.values():
            if conv.stream is not None and conv.state is not None:
                folded[conv.stream] = conv.state
        return batch.results

    async def _load(self, conn: Any, fresh: list[tuple[str, str, ChatMessage]]) -> dict[str, _Conversation]:
        keys = sorted({ckey for _, ckey, _ in fresh})
        rows = {r["conversation_key"]: r["ticket_id"] for r in await conn.fetch(_CONVERSATIONS, keys)}
        streams = [ticket_stream(t) for t in rows.values() if t is not None]
        known = {s: self._states.get(s, TicketState()) for s in streams}
        tails: dict[str, list[TicketEvent]] = {}
        if streams:
            after = [known[s].version for s in streams]
            for row in await conn.fetch(_READ_TAILS, streams, after):
                envelope = self.events.envelope(row)
                tails.setdefault(row["stream_id"], []).append(envelope.event)  # type: ignore[arg-type]
        conversations: dict[str, _Conversation] = {}
        for _, ckey, message in fresh:
            if ckey in conversations:
                continue
            route = self.route(message)
            if route is None:
                raise UnroutableMessage(f"no desk for {message.platform} tenant {message.tenant_id!r}")
            ticket_id = rows.get(ckey)
            state, stream = None, None
            if ticket_id is not None:
                stream = ticket_stream(ticket_id)
                state = fold(tails.get(stream, []), known[stream])
            conversations[ckey] = _Conversation(ckey, message, route, ticket_id, stream, state, known=ckey in rows)
        return conversations

    def _decide(self, key: str, message: ChatMessage, conv: _Conversation, batch: _Batch) -> None:
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
                conv.ticket_id, conv.state, conv.opened = ticket_id, TicketState(), conv.opened + 1
                conv.stream = ticket_stream(ticket_id)
            stream, state = conv.stream, conv.state
            assert stream is not None and state is not None and ticket_id == conv.ticket_id
            appending = batch.appends.get(stream)
            if appending is None:  # one metadata object per ticket and batch: the bulk append encodes it once
                appending = batch.appends[stream] = (state.version, [], EventMetadata(correlation_id=ticket_id))
            pending, metadata, received_at = appending[1], appending[2], message.received_at
            for n, event in enumerate(decision.events):
                pending.append(NewEvent(_event_id(key, n), event, received_at, metadata))
                state = evolve(state, event)
            conv.state = state
        batch.messages.append(
            (key, conv.key, ticket_id, decision.outcome.value, message.delivery_id, message.received_at)
        )
        for reply in decision.replies:
            chat = reply.chat
            batch.replies.append((key, chat.platform, chat.tenant_id, chat.conversation_id, reply.reason, reply.text))
        batch.results.append(Recorded(key, decision.outcome, ticket_id))

    async def _write(self, conn: Any, conversations: dict[str, _Conversation], batch: _Batch) -> None:
        requests = [AppendRequest(s, expected, events) for s, (expected, events, _) in batch.appends.items()]
        await self.bulk.append(conn, requests)  # a conflict aborts the transaction: `record` reruns the batch
        convs = [c for c in conversations.values() if c.opened]  # only a new ticket changes the row
        if convs:
            await conn.execute(
                _UPSERT_CONVERSATIONS,
                [c.key for c in convs],
                [c.message.platform for c in convs],
                [c.message.tenant_id for c in convs],
                [c.message.conversation_id for c in convs],
                [c.ticket_id for c in convs],
                [c.opened for c in convs],
            )
        await conn.execute(_INSERT_MESSAGES, *(list(col) for col in zip(*batch.messages, strict=True)))
        if batch.replies:
            await conn.execute(_INSERT_REPLIES, *(list(col) for col in zip(*batch.replies, strict=True)))
