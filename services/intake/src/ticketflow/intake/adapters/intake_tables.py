"""Intake's tables and the ticket events, written in ONE transaction per batch of messages. The
application service (`app.py`, `Intake.record`) loads, decides and stages through a `RecordingBatch`;
this module is the SQL and the caches behind it.

Exactly one effect per platform message:
- every conversation in the batch is locked first (`pg_advisory_xact_lock`, keys in sorted order, so
  two batches never deadlock), which serialises two different first messages of one conversation;
- under that lock, keys already in `intake_messages` are skipped; the new ones are inserted in the same
  transaction as the events (primary key = idempotency key: the constraint is the last word);
- event ids are derived from the idempotency key, so a retried append is a no-op in the store too.

What the machinery buys (docs/intake.md "Throughput", docs/benchmarks.md "Intake";
`tests/load/intake/bench_store.py` measures this path alone):
- a batch's events go out in one statement (`ticketflow.eventstore.bulk.BulkAppender`), intake's rows
  in one `unnest` insert per table;
- a ticket's state is folded once per process and kept (`STATES_KEPT`): only the events after the
  version already folded are read, with an index probe per stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from asyncpg.pgproto.pgproto import UUID as PgUUID

from ticketflow.contracts.chat import ChatMessage
from ticketflow.contracts.envelope import EventMetadata, NewEvent
from ticketflow.contracts.ids import ticket_stream
from ticketflow.contracts.ticket_events import TicketEvent
from ticketflow.eventstore.bulk import BulkAppender
from ticketflow.eventstore.errors import UNSTORABLE_CHARACTER_ERRORS, UnstorableEvent
from ticketflow.eventstore.store import AppendRequest, EventStore
from ticketflow.intake.domain.messages import DeskRoute, Reply
from ticketflow.lifecycle import TicketState, fold

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
INSERT INTO intake_replies (idempotency_key, platform, tenant_id, conversation_id, reason, body, traceparent)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
"""

Fresh = tuple[str, str, ChatMessage]  # (idempotency key, conversation key, message), not recorded before


@dataclass
class Conversation:
    """A conversation of the batch: its ticket as folded from the store, and what the batch did to it."""

    key: str
    message: ChatMessage  # its first message in the batch (platform, tenant, conversation)
    route: DeskRoute
    ticket_id: uuid.UUID | None
    stream: str | None  # ticket_stream(ticket_id), kept (str(UUID) costs ~1 µs a message)
    state: TicketState | None
    known: bool  # intake had seen it before this batch
    opened: int = 0  # tickets this batch opened for it
    seen: int = 0  # messages of this batch decided so far

    def opens(self, ticket_id: uuid.UUID) -> None:
        self.ticket_id, self.state, self.opened = ticket_id, TicketState(), self.opened + 1
        self.stream = ticket_stream(ticket_id)


def _event_id(idempotency_key: str, n: int) -> uuid.UUID:
    """The n-th event caused by a platform message: the same on every retry, so a repeated append is a
    no-op in the store. blake2b with UUIDv8 bits (uuid.uuid5 costs ~4x more; this runs per event).
    asyncpg's UUID is a `uuid.UUID` built in C (0.1 µs instead of 1.3 µs) that asyncpg sends as is."""
    digest = bytearray(hashlib.blake2b(f"{idempotency_key}#{n}".encode(), digest_size=16).digest())
    digest[6] = (digest[6] & 0x0F) | 0x80
    digest[8] = (digest[8] & 0x3F) | 0x80
    event_id: uuid.UUID = PgUUID(bytes(digest))
    return event_id


@dataclass
class RecordingBatch:
    """One transaction's work: claim the messages, load their conversations, stage what was decided,
    write it all. Used only inside `IntakeTables.batch()`."""

    conn: Any
    tables: IntakeTables
    appends: dict[str, tuple[int, list[NewEvent], EventMetadata]] = field(default_factory=dict)
    messages: list[tuple[str, str, uuid.UUID | None, str, str | None, Any]] = field(default_factory=list)
    replies: list[tuple[str, str, str, str, str, str, str | None]] = field(default_factory=list)
    folded: dict[str, TicketState] = field(default_factory=dict)

    async def claim(self, unique: dict[str, tuple[str, ChatMessage]]) -> tuple[list[Fresh], list[str]]:
        """Lock the batch's conversations, then split its messages (by idempotency key) into the ones
        never recorded and the keys already recorded."""
        await self.conn.execute(_LOCK, sorted({ckey for ckey, _ in unique.values()}))
        seen = {r["idempotency_key"] for r in await self.conn.fetch(_SEEN, list(unique))}
        fresh = [(k, ckey, m) for k, (ckey, m) in unique.items() if k not in seen]
        return fresh, [k for k in unique if k in seen]

    async def load(self, fresh: list[Fresh], route: Callable[[ChatMessage], DeskRoute]) -> dict[str, Conversation]:
        """Each conversation's current ticket, folded from the store (only the tail after what this
        process folded before)."""
        keys = sorted({ckey for _, ckey, _ in fresh})
        rows = {r["conversation_key"]: r["ticket_id"] for r in await self.conn.fetch(_CONVERSATIONS, keys)}
        streams = [ticket_stream(t) for t in rows.values() if t is not None]
        known = {s: self.tables.states.get(s, TicketState()) for s in streams}
        tails: dict[str, list[TicketEvent]] = {}
        if streams:
            after = [known[s].version for s in streams]
            for row in await self.conn.fetch(_READ_TAILS, streams, after):
                envelope = self.tables.events.envelope(row)
                tails.setdefault(row["stream_id"], []).append(envelope.event)  # type: ignore[arg-type]
        conversations: dict[str, Conversation] = {}
        for _, ckey, message in fresh:
            if ckey in conversations:
                continue
            ticket_id = rows.get(ckey)
            state, stream = None, None
            if ticket_id is not None:
                stream = ticket_stream(ticket_id)
                state = fold(tails.get(stream, []), known[stream])
            conversations[ckey] = Conversation(
                ckey, message, route(message), ticket_id, stream, state, known=ckey in rows
            )
        return conversations

    def stage_events(
        self, conversation: Conversation, key: str, events: Sequence[TicketEvent], at: Any, traceparent: str | None
    ) -> None:
        """The events a message caused, appended after the conversation's ticket as it stands now
        (call before evolving its state), with the message's trace context when it has one."""
        stream, state, ticket_id = conversation.stream, conversation.state, conversation.ticket_id
        assert stream is not None and state is not None and ticket_id is not None
        appending = self.appends.get(stream)
        if appending is None:  # one metadata object per ticket and batch: the bulk append encodes it once
            appending = self.appends[stream] = (state.version, [], EventMetadata(correlation_id=ticket_id))
        pending, metadata = appending[1], appending[2]
        if traceparent is not None:  # a metadata object of its own (encoded once per message then)
            metadata = EventMetadata(correlation_id=ticket_id, traceparent=traceparent)
        for n, event in enumerate(events):
            pending.append(NewEvent(_event_id(key, n), event, at, metadata))

    def stage_recorded(
        self, key: str, ckey: str, ticket_id: uuid.UUID | None, outcome: str, message: ChatMessage
    ) -> None:
        """The message's row in `intake_messages` (its idempotency key: never recorded twice)."""
        self.messages.append((key, ckey, ticket_id, outcome, message.delivery_id, message.received_at))

    def stage_reply(self, key: str, reply: Reply, traceparent: str | None) -> None:
        """A reply the bot owes the chat, queued with the decision that caused it (the relay sends it, with
        the message's trace context)."""
        chat = reply.chat
        self.replies.append(
            (key, chat.platform, chat.tenant_id, chat.conversation_id, reply.reason, reply.text, traceparent)
        )

    async def write(self, conversations: dict[str, Conversation]) -> None:
        conn = self.conn
        requests = [AppendRequest(s, expected, events) for s, (expected, events, _) in self.appends.items()]
        await self.tables.bulk.append(conn, requests)  # a conflict aborts the transaction: the batch is rerun
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
        await conn.execute(_INSERT_MESSAGES, *(list(col) for col in zip(*self.messages, strict=True)))
        if self.replies:
            await conn.execute(_INSERT_REPLIES, *(list(col) for col in zip(*self.replies, strict=True)))
        for conversation in conversations.values():
            if conversation.stream is not None and conversation.state is not None:
                self.folded[conversation.stream] = conversation.state


class IntakeTables:
    def __init__(self, pool: asyncpg.Pool, events: EventStore) -> None:
        self.pool = pool
        self.events = events
        self.bulk = BulkAppender(events.codec)
        # Folded ticket states by stream. Events are immutable, so a state at version v plus the
        # events after v is the current state: only the tail is read, never the whole history again.
        self.states: dict[str, TicketState] = {}

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[RecordingBatch]:
        """A transaction for one batch. The folded states are remembered only after the commit (a
        rolled-back state must not be cached). A value of intake's own rows PostgreSQL refuses raises
        `UnstorableEvent` (never an outage to retry: the caller sets the message aside)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                batch = RecordingBatch(conn, self)
                yield batch
        except UNSTORABLE_CHARACTER_ERRORS as exc:
            raise UnstorableEvent(f"intake's rows for this batch cannot be stored: {exc!r}") from exc
        self._remember(batch.folded)

    def _remember(self, folded: dict[str, TicketState]) -> None:
        for stream, state in folded.items():
            self.states.pop(stream, None)
            self.states[stream] = state
        while len(self.states) > STATES_KEPT:
            self.states.pop(next(iter(self.states)))
