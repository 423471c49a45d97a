"""The append pipeline alone (no store): order per stream with two flushes in flight, barriers,
backpressure and failure, against a writer that holds its first append until released."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

import pytest
from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.sla.adapters.append_queue import AppendQueue, Entry
from ticketflow.sla.domain import Emitted, TicketSla, event_id_of


class GatedWriter:
    """Records each append (ticket -> (expected version, event ids)); the first waits for `gate`."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict[uuid.UUID, tuple[int, list[uuid.UUID]]]] = []
        self.gate = asyncio.Event()
        self.fail = fail

    async def write(
        self, states: Mapping[uuid.UUID, TicketSla], pending: Mapping[uuid.UUID, list[Emitted]]
    ) -> dict[uuid.UUID, TicketSla]:
        self.calls.append({t: (states[t].sla_version, [e.event_id for e in pending[t]]) for t in pending})
        if len(self.calls) == 1:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("store down")
        return {t: replace(s, sla_version=s.sla_version + len(pending[t])) for t, s in states.items()}


def state(ticket: uuid.UUID) -> TicketSla:
    return TicketSla(ticket, "d", "t", "normal", "active")


def events(ticket: uuid.UUID, *names: str) -> list[Emitted]:
    return [Emitted(event_id_of(ticket, n), sla.SlaClockCancelled(ticket, "resolution", n), 0) for n in names]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_stream_is_in_one_flush_at_a_time_and_others_go_meanwhile() -> None:
    written: list[dict[uuid.UUID, Entry]] = []
    writer = GatedWriter()
    queue = AppendQueue(writer, lambda entries, _: written.append(entries))  # type: ignore[arg-type]
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # Given a's and b's first events in a flush that the store holds;
    kept_a = queue.add(0, a, 0, events(a, "a1", "a2"), state(a))
    queue.add(0, b, 0, events(b, "b1"), state(b))
    await settle()
    assert kept_a.sla_version == 2 and len(writer.calls) == 1
    # when a and c get more events meanwhile,
    queue.add(0, a, kept_a.sla_version, events(a, "a3"), kept_a)
    queue.add(1, c, 0, events(c, "c1"), state(c))
    cut = queue.barrier()
    await settle()
    # then c goes in a second flush at once, a waits for its first append,
    assert [set(call) for call in writer.calls] == [{a, b}, {c}]
    waiting = asyncio.create_task(queue.wait(cut))
    await settle()
    assert not waiting.done() and queue.pending() == 4
    # and once released, a's next events follow after its new head, in order: the cut is then stored.
    writer.gate.set()
    await asyncio.wait_for(waiting, 1)
    assert writer.calls[2] == {a: (2, [event_id_of(a, "a3")])}
    assert writer.calls[0][a] == (0, [event_id_of(a, "a1"), event_id_of(a, "a2")])
    assert queue.pending() == 0 and queue.barrier() is None and len(written) == 3
    await queue.close()


async def test_a_failed_append_fails_every_waiter_and_every_later_add() -> None:
    writer = GatedWriter(fail=True)
    queue = AppendQueue(writer, lambda entries, _: None)  # type: ignore[arg-type]
    t = uuid.uuid4()
    queue.add(0, t, 0, events(t, "x"), state(t))
    cut = queue.barrier()
    waiting = asyncio.create_task(queue.wait(cut))
    draining = asyncio.create_task(queue.drain())
    await settle()
    writer.gate.set()
    for task in (waiting, draining):
        with pytest.raises(RuntimeError, match="restart from its checkpoint"):
            await asyncio.wait_for(task, 1)
    with pytest.raises(RuntimeError, match="restart from its checkpoint"):
        queue.add(0, t, 1, events(t, "y"), state(t))
    await queue.close()
