"""Rule matching: the first rule whose every condition accepts the ticket's facts wins.

The decision says which rule matched and why (the facts it looked at), so a routed ticket can be
explained later. No rule matching is not an error: the ticket goes to the fallback queue and the
decision is marked `fell_back` so the caller can raise the warning metric.
"""

from __future__ import annotations

import msgspec

from ticketflow.contracts.values import Priority
from ticketflow.routing.domain.config import Desks, QueueConfig, RuleConfig

FALLBACK_RULE_ID = "fallback"
ROUTE_CACHE_SIZE = 65_536  # distinct (desk, track, category, language, tier, priority) remembered


class TicketFacts(msgspec.Struct, frozen=True):
    desk: str
    track: str
    category: str
    language: str
    contract_tier: str
    priority: Priority


class RouteDecision(msgspec.Struct, frozen=True):
    queue: QueueConfig
    tier: str
    priority: Priority
    rule_id: str
    reason: str
    skills: tuple[str, ...] = ()
    fell_back: bool = False


_CONDITIONS = ("desk", "track", "category", "language", "contract_tier", "priority")


def _accepts(rule: RuleConfig, facts: TicketFacts) -> bool:
    return (
        (not rule.desk or facts.desk in rule.desk)
        and (not rule.track or facts.track in rule.track)
        and (not rule.category or facts.category in rule.category)
        and (not rule.language or facts.language in rule.language)
        and (not rule.contract_tier or facts.contract_tier in rule.contract_tier)
        and (not rule.priority or facts.priority in rule.priority)
    )


def _why(rule: RuleConfig, facts: TicketFacts) -> str:
    used = [f"{name}={getattr(facts, name)}" for name in _CONDITIONS if getattr(rule, name)]
    return f"rule {rule.id}: " + (", ".join(used) if used else "matches every ticket")


def route(desks: Desks, facts: TicketFacts) -> RouteDecision:
    """The first matching rule's decision. A pure function of the (immutable) desks and the facts,
    so remembered per facts: scanning the rules was a third of a decision with 20 rules."""
    cache: dict[TicketFacts, RouteDecision] = desks.route_cache
    decision = cache.get(facts)
    if decision is None:
        if len(cache) >= ROUTE_CACHE_SIZE:
            cache.clear()
        decision = cache[facts] = _route(desks, facts)
    return decision


def _route(desks: Desks, facts: TicketFacts) -> RouteDecision:
    for rule in desks.rules:
        if _accepts(rule, facts):
            queue = desks.queues[rule.queue]
            tier = rule.tier or queue.tier
            if tier == "contract":
                tier = facts.contract_tier
            return RouteDecision(
                queue=queue,
                tier=tier,
                priority=rule.set_priority or facts.priority,
                rule_id=rule.id,
                reason=_why(rule, facts),
                skills=rule.skills or queue.skills,
            )
    queue = desks.fallback_for(facts.desk)
    described = ", ".join(f"{name}={getattr(facts, name)}" for name in _CONDITIONS)
    return RouteDecision(
        queue=queue,
        tier=queue.tier,
        priority=facts.priority,
        rule_id=FALLBACK_RULE_ID,
        reason=f"no rule matched ({described}); fallback queue {queue.id}",
        skills=queue.skills,
        fell_back=True,
    )
