"""`chat.inbound` batches recorded while earlier ones still are, without a conversation overtaking itself.

The ordered pipeline (`ticketflow.messaging.ordered`, pattern (b)) keeps `TICKETFLOW_INTAKE_IN_FLIGHT`
batches in flight and commits their offsets strictly in order; this is intake's part of it, the `begin`
side. What it buys: the consumer decodes and decides the next batch while PostgreSQL stores the last
one (docs/intake.md "Throughput", docs/benchmarks.md "Intake": the consumer stops idling between
batches; `tests/load/intake/bench_store.py --in-flight 2` measures it).

- **Units.** A batch is split into units: the messages of conversations no unit in flight holds start at
  once; the messages of a conversation held by an earlier unit wait for every unit they depend on (a
  conversation with a batch in flight keeps its next messages queued behind it). Two units in flight
  never share a conversation.
- **Failure.** A unit that depends on a failed unit does not run (its messages must not overtake the
  failed ones); the batch fails, and the pipeline seeks back and redelivers it. `forget` (the pipeline's
  `on_rewind`) drops the holders: every unit in flight has settled by then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ticketflow.intake.app import Inbound as Item  # (Kafka record, its decoded message)
from ticketflow.intake.domain.messages import conversation_key
from ticketflow.messaging.ordered import NotCommitted


class _Unit:
    __slots__ = ("conversations", "deps", "done", "items")

    def __init__(self, items: list[Item], conversations: list[str], deps: frozenset[_Unit]) -> None:
        self.items = items
        self.conversations = conversations  # distinct conversation keys of `items`
        self.deps = deps
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class ConversationOrder:
    def __init__(self, record: Callable[[list[Item]], Awaitable[None]]) -> None:
        self.record = record
        self._holders: dict[str, _Unit] = {}  # conversation -> the last unit in flight holding it

    def run(self, items: list[Item], *alongside: Awaitable[None]) -> Awaitable[None]:
        """Split `items` into units now (call in fetch order, synchronously); the awaitable records them,
        each after the units it waits for, and awaits `alongside` (dead letters) too. It fails if any
        of them failed, once all have settled."""
        units = self._units(items)
        return self._run(units, alongside)

    def forget(self) -> None:
        """After a seek back: nothing is in flight, no conversation is held."""
        self._holders.clear()

    def _units(self, items: list[Item]) -> list[_Unit]:
        # One unit for the conversations nobody holds, one per distinct set of units waited on.
        holders = self._holders
        groups: dict[frozenset[_Unit], tuple[list[Item], list[str]]] = {}
        group_of: dict[str, tuple[list[Item], list[str]]] = {}  # conversation -> its group
        for item in items:
            ckey = conversation_key(item[1])
            group = group_of.get(ckey)
            if group is None:
                holder = holders.get(ckey)
                deps = frozenset((holder,)) if holder is not None else frozenset()
                group = groups.get(deps)
                if group is None:
                    group = groups[deps] = ([], [])
                group[1].append(ckey)
                group_of[ckey] = group
            group[0].append(item)
        units = [_Unit(unit_items, ckeys, deps) for deps, (unit_items, ckeys) in groups.items()]
        for unit in units:
            for ckey in unit.conversations:
                holders[ckey] = unit
        return units

    async def _run(self, units: list[_Unit], alongside: tuple[Awaitable[None], ...]) -> None:
        outcomes = await asyncio.gather(*(self._run_unit(u) for u in units), *alongside, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:  # this batch's own failure first: it is what starts the seek back
            raise next((f for f in failures if not isinstance(f, NotCommitted)), failures[0])

    async def _run_unit(self, unit: _Unit) -> None:
        try:
            for dep in unit.deps:
                await dep.done  # raises if it failed: this unit's messages must not overtake it
            await self.record(unit.items)
            unit.done.set_result(None)
        except BaseException as exc:
            # A unit waiting for this one does not run; its batch is not committed either, and the
            # recovery this failure starts covers it (the pipeline's own "an earlier batch failed").
            unit.done.set_exception(NotCommitted(f"an earlier unit failed: {exc!r}"))
            unit.done.exception()  # retrieved: no unit may wait for it
            raise
        finally:
            holders = self._holders
            for ckey in unit.conversations:
                if holders.get(ckey) is unit:
                    del holders[ckey]
