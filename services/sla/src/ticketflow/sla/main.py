"""Composition: the SLA service consumes `ticket.events`, keeps per-ticket SLA clocks in a timer wheel
(owned per partition), and appends SlaClock*/SlaWarning/SlaBreached/SlaMet to the event store.

Run: `python -m ticketflow.sla` (TICKETFLOW_SLA_PORT, default 8004; settings.py lists the rest)."""

from __future__ import annotations

import asyncio

from ticketflow.calendar import CalendarError
from ticketflow.deskconfig import DeskConfigError, DeskRegistry, load_desks
from ticketflow.eventstore import EventStore
from ticketflow.runtime.service import Runtime, Service
from ticketflow.sla.adapters import calendar_versions
from ticketflow.sla.adapters.checkpoints import PartitionCheckpoints
from ticketflow.sla.adapters.desk_rules import DeskRules
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import SlaEngine
from ticketflow.sla.consumer import SlaConsumer
from ticketflow.sla.domain.policies import RulesError
from ticketflow.sla.http import routes
from ticketflow.sla.settings import SlaSettings

REFUSALS = (DeskConfigError, CalendarError, RulesError, ValueError)  # a desk file SLA cannot count clocks with


def build(settings: SlaSettings) -> Service:
    async def start(rt: Runtime) -> None:
        current = [await desk_rules(rt, load_desks(settings.desk_folder()))]
        store, checkpoints = EventStore(rt.pool), PartitionCheckpoints(rt.pool, settings.topic)

        async def engine() -> SlaEngine:  # one per round of the consumer: a failed one is replaced
            return SlaEngine(current[0], SlaWriter(store), checkpoints=checkpoints)

        consumer = SlaConsumer(
            rt.broker,
            settings.topic,
            engine,
            rt.dead_letters("sla"),
            group_id=settings.group_id,
            max_records=settings.max_records,
            checkpoint_every_s=settings.checkpoint_seconds,
        )
        rt.serve(*routes(consumer))
        rt.background("ticket.events", consumer.run)

        async def reload() -> dict[str, int]:
            """The new configuration, validated and its calendars stored, is the next round's; the round
            ends so that every partition's clocks are recalculated under it as they go live."""
            rules = await desk_rules(rt, await asyncio.to_thread(load_desks, settings.desk_folder()))
            current[0] = rules
            consumer.renew()
            return {"desks": len(rules.registry.desks), "calendar_versions": len(rules.definitions())}

        rt.on_desk_reload(reload, *REFUSALS)

    async def desk_rules(rt: Runtime, desks: DeskRegistry) -> DeskRules:
        # Calendars by version: those stored by earlier runs (a configuration changed since still finds
        # the calendar the clocks counted in), and this configuration's, stored before any state records them.
        rules = DeskRules(desks, await calendar_versions.load(rt.pool))
        await calendar_versions.save(rt.pool, rules.definitions())
        await asyncio.to_thread(rules.warm_calendars)  # the first event does not pay for expanding a year
        return rules

    return Service("sla", settings, start)
