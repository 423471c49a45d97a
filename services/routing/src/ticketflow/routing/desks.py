"""The adapter from `ticketflow.deskconfig` (one file per desk, validated with file:line reporting) to
routing's configuration. Desk files are the source of truth; routing only flattens them:
- a desk's rules get a `desk` condition (rules are per desk there), in desk order;
- a queue's business calendar is its track's calendar;
- a ticket's contract tier is its tenant's (bot, portal, generic tenant), else its track's;
- a queue's `fallback` is its overflow queue (used when nobody in the queue may take a new ticket);
- a queue's `lead` is its `lead_id` (named in TicketUnassigned after a no-answer reassignment).
What desk files do not say yet (skills per rule) stays empty.
"""

from __future__ import annotations

from pathlib import Path

from ticketflow.calendar import BusinessCalendar
from ticketflow.deskconfig import DeskRegistry, load_desks
from ticketflow.deskconfig.loader import tenant_keys
from ticketflow.routing.domain.config import Desks, QueueConfig, RoutingConfig, RuleConfig


def from_registry(registry: DeskRegistry) -> Desks:
    queues: list[QueueConfig] = []
    rules: list[RuleConfig] = []
    desk_fallbacks: dict[str, str] = {}
    tenant_tiers: dict[str, str] = {}
    track_tiers: dict[str, str] = {}
    calendars: dict[str, BusinessCalendar] = {}
    for desk in registry.desks.values():
        tracks = {track.id: track for track in desk.tracks}
        for track in desk.tracks:
            if track.contract_tier is not None:
                track_tiers[f"{desk.id}/{track.id}"] = track.contract_tier
        for queue in desk.queues:
            calendar_id = f"{desk.id}/{tracks[queue.track].calendar}"
            calendars.setdefault(calendar_id, registry.calendar(desk.id, queue.track))
            queues.append(
                QueueConfig(
                    id=queue.id,
                    desk=desk.id,
                    tier=queue.tier,
                    strategy=queue.strategy,
                    calendar=calendar_id,
                    reassign_after_minutes=queue.reassign_after_minutes,
                    skills=queue.skills,
                    overflow=queue.fallback,
                    lead_id=queue.lead,
                )
            )
        rules.extend(
            RuleConfig(
                id=rule.id if rule.id not in {r.id for r in rules} else f"{desk.id}/{rule.id}",
                queue=rule.queue,
                desk=(desk.id,),
                track=rule.track,
                category=rule.category,
                language=rule.language,
                contract_tier=rule.contract_tier,
                priority=rule.priority,
                set_priority=rule.set_priority,
            )
            for rule in desk.routing.rules
        )
        desk_fallbacks[desk.id] = desk.routing.fallback_queue
        for _, key, tier, _ in tenant_keys(desk):
            if tier is not None:
                tenant_tiers[key] = tier
    if not desk_fallbacks:
        raise ValueError("no desks configured")
    config = RoutingConfig(
        queues=tuple(queues),
        rules=tuple(rules),
        fallback_queue=next(iter(desk_fallbacks.values())),  # every desk names its own
        desk_fallbacks=desk_fallbacks,
        contract_tiers=tenant_tiers,
        track_contract_tiers=track_tiers,
    )
    return Desks(config, "desk configuration", calendars)


def load(directory: Path | None = None) -> Desks:
    """Desks from `directory` (TICKETFLOW_DESK_CONFIG_DIR; default: the packaged ones); a broken file
    raises `DeskConfigError` naming file, line and problem before anything starts."""
    return from_registry(load_desks(directory))
