"""The store writer: SLA events appended to their `sla-<ticket>` streams, one bulk statement per chunk,
exactly-once in effect. Sized by the SLA benchmarks (`make bench-sla-service`, `make bench-sla-burst`:
tests/load/sla/bench_service.py, bench_fire_burst.py; `--writer append_many` measures the path before
the bulk append, `--tune store_writer.MAX_CHUNK=...` the chunk sizes).

Every SLA event id is deterministic, so a replayed decision (after a crash, a rebalance, a redelivered
record) appends the same ids, and the store refuses to write them twice.

The normal path is `eventstore.bulk.BulkAppender` (one statement for a chunk's events,
the store's expected-version check, no per-event result rows) in a transaction of its own. It
explains nothing: a replayed id or a stale stream head aborts the chunk's transaction (nothing of it
is written), and the writer falls back to `append_many`, which answers "already stored" for a chunk
appended before, and then, if the chunk mixes stored and new events or a head is stale, to one event
at a time: an event already stored is skipped, a version conflict reads the stream's newer events
from the store's head (folding their firings into the clocks, so a level that fired before the crash
is not fired again under a recalculated deadline) and retries. The expected version of each
`sla-<ticket>` stream is the one this service knows; after a restart from an older checkpoint it can be
behind the store, and after one cut before a duplicate firing was skipped it can be ahead of it (the
store's head then wins). An event is never dropped: a stream still conflicting after `MAX_CONFLICTS`
re-reads raises, and the engine restarts from its checkpoints and decides again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence

import asyncpg
from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts.envelope import EventEnvelope, NewEvent
from ticketflow.contracts.ids import sla_stream, sla_streams
from ticketflow.eventstore import AppendRequest, ConcurrencyError, EventIdReused, EventStore, RetryableStoreError
from ticketflow.eventstore.bulk import BulkAppender
from ticketflow.eventstore.connection import retryable_errors
from ticketflow.sla.domain.replay import evolve
from ticketflow.sla.domain.state import Emitted, TicketSla, utc

MAX_CONFLICTS = 5
Ticket = uuid.UUID
MIN_CHUNK = 1000  # tickets per parallel append below which one round trip is cheaper (a capped flush: one)
MAX_CHUNK = 2000  # tickets per append: a firing burst of 50 000 is many modest transactions, not one huge one


def new_events(emitted: Sequence[Emitted]) -> list[NewEvent]:
    return [NewEvent(e.event_id, e.event, utc(e.at)) for e in emitted]


def absorb(state: TicketSla, stored: Sequence[EventEnvelope]) -> TicketSla:
    """Take the SLA stream's newer events into a ticket's state: its head version and the firings."""
    clocks = state.clocks
    for envelope in stored:
        event = envelope.event
        if isinstance(event, sla.SlaWarning | sla.SlaBreached):
            clock = next((c for c in clocks if c.target == event.target), None)
            if clock is not None and int(event.fired_at.timestamp()) >= clock.started_at:
                clocks = evolve(clocks, event, int(envelope.occurred_at.timestamp()))
    version = max([state.sla_version, *(e.stream_version for e in stored)])
    return replace(state, clocks=clocks, sla_version=version)


class SlaWriter:
    def __init__(self, store: EventStore, *, parallel: int = 4, bulk: bool = True) -> None:
        self.store = store
        self.parallel = parallel
        self.bulk = BulkAppender(store.codec) if bulk else None  # None: every chunk through append_many
        self.fallbacks = 0  # chunks the bulk append refused (replays, stale heads), retried via append_many
        self.appended = 0  # events newly written
        self.duplicates = 0  # events found already stored (replays)
        self.repairs = 0  # version conflicts repaired

    async def write(
        self, states: Mapping[uuid.UUID, TicketSla], pending: Mapping[uuid.UUID, list[Emitted]]
    ) -> dict[uuid.UUID, TicketSla]:
        """Append each ticket's pending events; returns the stored states of the tickets whose head (or
        absorbed firings) may differ from what was expected (`sla_version + len(events)`): none after a
        bulk append; every ticket of a chunk that fell back (the caller compares, `app.SlaEngine._written`).

        A large batch is split into `parallel` append_many calls on separate connections, so the
        database's work spreads over its cores (each chunk is atomic; a failure raises, and the
        replay that follows finds the committed chunks already stored). Raises RetryableStoreError
        when the database is unreachable."""
        tickets = [t for t, events in pending.items() if events]
        if not tickets:
            return {}
        chunks = self.parallel if len(tickets) >= self.parallel * MIN_CHUNK else 1
        chunks = max(chunks, -(-len(tickets) // MAX_CHUNK))
        gate = asyncio.Semaphore(self.parallel)

        async def one(chunk: list[Ticket]) -> dict[uuid.UUID, TicketSla]:
            async with gate:
                return await self._write_chunk(states, pending, chunk)

        parts = await asyncio.gather(*(one(tickets[i::chunks]) for i in range(chunks)))
        return {ticket: state for part in parts for ticket, state in part.items()}

    async def _write_chunk(
        self,
        states: Mapping[uuid.UUID, TicketSla],
        pending: Mapping[uuid.UUID, list[Emitted]],
        tickets: list[uuid.UUID],
    ) -> dict[uuid.UUID, TicketSla]:
        streams = sla_streams(tickets)
        requests = [
            AppendRequest(stream, states[t].sla_version, new_events(pending[t]))
            for t, stream in zip(tickets, streams, strict=True)
        ]
        if self.bulk is not None and await self._bulk(requests):
            self.appended += sum(len(r.events) for r in requests)
            return {}  # every head is where the caller expected it
        try:
            results = await self.store.append_many(requests)
        except (ConcurrencyError, EventIdReused):
            return {t: await self._one_by_one(states[t], pending[t]) for t in tickets}
        updated: dict[uuid.UUID, TicketSla] = {}
        for ticket, result in zip(tickets, results, strict=True):
            if result.already_stored:
                self.duplicates += len(pending[ticket])
            else:
                self.appended += len(pending[ticket])
            head = max(states[ticket].sla_version, result.stream_version)
            updated[ticket] = replace(states[ticket], sla_version=head)
        return updated

    async def _bulk(self, requests: list[AppendRequest]) -> bool:
        """The chunk in one bulk statement and its own transaction; False when the store refused it
        (an id already stored, a stale head): nothing of it was written, the caller explains it."""
        assert self.bulk is not None
        try:
            async with self.store.pool.acquire() as conn, conn.transaction():
                await self.bulk.append(conn, requests)
        except (ConcurrencyError, asyncpg.UniqueViolationError):
            self.fallbacks += 1
            return False
        except (*retryable_errors(), asyncpg.InterfaceError) as exc:
            if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" not in str(exc):
                raise
            raise RetryableStoreError(f"append interrupted: {exc!r}") from exc
        return True

    async def _one_by_one(self, state: TicketSla, emitted: Sequence[Emitted]) -> TicketSla:
        stream = sla_stream(state.ticket_id)
        fired_before: set[tuple[str, float]] = set()  # (target, level) found in the store for this clock
        for event in new_events(emitted):
            if _firing_key(event.event) in fired_before:
                self.duplicates += 1  # fired before a crash under another deadline: once is enough
                continue
            for _ in range(MAX_CONFLICTS):
                try:
                    result = await self.store.append(stream, state.sla_version, [event])
                except ConcurrencyError as conflict:
                    self.repairs += 1
                    # The store's head is the truth, also below the kept one (a checkpoint cut with the
                    # optimistic head before a duplicate firing was skipped): re-read from there.
                    head = min(state.sla_version, conflict.actual or 0)
                    newer = await self.store.read_stream(stream, head + 1)
                    state = absorb(replace(state, sla_version=head), newer)
                    fired_before.update(_firings_of_live_clocks(state, newer))
                    if _firing_key(event.event) in fired_before:
                        self.duplicates += 1
                        break
                    continue
                if result.already_stored:
                    self.duplicates += 1
                else:
                    self.appended += 1
                state = replace(state, sla_version=max(state.sla_version, result.stream_version))
                break
            else:  # another writer keeps appending: never drop the event; the engine restarts and decides again
                raise ConcurrencyError(stream, state.sla_version, state.sla_version)
        return state


def _firing_key(event: object) -> tuple[str, float] | None:
    if isinstance(event, sla.SlaWarning):
        return (event.target, event.level)
    if isinstance(event, sla.SlaBreached):
        return (event.target, 1.0)
    return None


def _firings_of_live_clocks(state: TicketSla, stored: Sequence[EventEnvelope]) -> set[tuple[str, float]]:
    found = set()
    for envelope in stored:
        event = envelope.event
        if isinstance(event, sla.SlaWarning | sla.SlaBreached):
            clock = state.clock(event.target)
            key = _firing_key(event)
            if key is not None and clock is not None and int(event.fired_at.timestamp()) >= clock.started_at:
                found.add(key)
    return found
