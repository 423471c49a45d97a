"""An SLA firing burst for the failure tests: `count` tickets whose 0.9 warning falls due at `due` and whose
breach falls due 5 s later (two waves of decisions, so two appends per `sla-<ticket>` stream), fired by
the real engine and timer loop on the system clock into the store. An engine whose append failed is
replaced by a fresh one from the states before the burst, as the service restores one from its
checkpoints; the deterministic event ids make its repeated firings no-ops in the store."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import asyncpg
from sla_builders import FakeRules

from ticketflow.eventstore import EventStore
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import SlaEngine
from ticketflow.sla.domain.clocks import Clock
from ticketflow.sla.domain.state import TicketSla

PARTITIONS = 3
FIRINGS_PER_TICKET = 2
TARGET_S = 50  # first response: the 0.9 warning at 45 s, the breach at 50 s
_STORED = """SELECT count(*) FROM events WHERE event_type IN ('SlaWarning', 'SlaBreached')
             AND stream_id = ANY($1::text[])"""


def due_states(count: int, due: int) -> list[TicketSla]:
    """First response of TARGET_S (always open), the 0.75 warning fired: 0.9 at `due`, breach 5 s later."""
    clock = Clock("first_response", TARGET_S, due - 45, running_since=due - 45, fired=0.75)
    return [TicketSla(uuid.uuid4(), "d", "t", "normal", "active", (clock,), 2, 0) for _ in range(count)]


class FiringBurst:
    def __init__(self, pool: asyncpg.Pool, count: int, lead_s: float = 2.0) -> None:
        self.pool = pool
        self.due = int(time.time() + lead_s)
        self.states = due_states(count, self.due)
        self.streams = [f"sla-{state.ticket_id}" for state in self.states]
        self.expected = count * FIRINGS_PER_TICKET
        self.first_wave = count  # the 0.9 warnings
        self.engines = 0  # started; more than one means an engine failed and was replaced

    async def stored(self) -> int:
        """Firings of this burst in the store now (0 while the store is away)."""
        try:
            return int(await self.pool.fetchval(_STORED, self.streams))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError):
            return 0  # a pooled connection the restart cut can fail oddly once (asyncpg): asked again

    async def _engine(self) -> SlaEngine:
        rules = FakeRules(first_response=TARGET_S)
        engine = SlaEngine(rules, SlaWriter(EventStore(self.pool)))
        for number in range(PARTITIONS):
            mine = {s.ticket_id: s for n, s in enumerate(self.states) if n % PARTITIONS == number}
            await engine.assign(number, 0, mine, 0, rules.fingerprint())
        engine.start()
        self.engines += 1
        return engine

    async def run(self, timeout_s: float = 180) -> None:
        """Until every firing of the burst is stored, replacing an engine whose append failed."""
        engine = await self._engine()
        try:
            async with asyncio.timeout(timeout_s):
                while await self.stored() < self.expected:
                    if engine.failed is not None:
                        with contextlib.suppress(Exception):
                            await engine.stop(checkpoint=False)
                        await asyncio.sleep(0.5)
                        engine = await self._engine()
                    await asyncio.sleep(0.05)
        finally:
            with contextlib.suppress(Exception):
                await engine.stop(checkpoint=False)
