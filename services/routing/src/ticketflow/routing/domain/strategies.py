"""Assignment strategies: which available agent of a queue gets the next ticket.

Every strategy chooses only among available agents (online, on shift, below capacity); the
strategies differ in their promise:
- round_robin: agents take turns in agent-id order, starting after the queue's cursor (the last agent
  it assigned), so over any run the counts of continuously available agents differ by at most one;
- least_loaded: the lowest priority-weighted load per unit of capacity (ties: fewer open tickets,
  then agent id), so bigger agents take proportionally more;
- skill_based: the first fallback level that has a candidate, then least-loaded within it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple

from ticketflow.routing.domain.config import FallbackLevel, QueueConfig
from ticketflow.routing.domain.roster import Agent


class Pick(NamedTuple):
    agent_id: str
    strategy: str
    why: str


def round_robin(candidates: Sequence[Agent], cursor: str | None) -> Pick | None:
    """`candidates` in agent-id order; the next one after `cursor`, wrapping around."""
    if not candidates:
        return None
    index = 0
    if cursor is not None:
        index = bisect_right([a.agent_id for a in candidates], cursor)
        if index == len(candidates):
            index = 0
    chosen = candidates[index]
    after = f" after {cursor}" if cursor is not None else ""
    return Pick(chosen.agent_id, "round_robin", f"round-robin turn{after}")


def _load_key(agent: Agent) -> tuple[float, int, str]:
    return (agent.load / agent.capacity, len(agent.open_tickets), agent.agent_id)


def least_loaded(candidates: Sequence[Agent], strategy: str = "least_loaded", why: str = "") -> Pick | None:
    if not candidates:
        return None
    chosen = min(candidates, key=_load_key)
    detail = f"load {chosen.load} over capacity {chosen.capacity}, {len(chosen.open_tickets)} open"
    return Pick(chosen.agent_id, strategy, f"{why}least loaded ({detail})")


def _level_filter(level: FallbackLevel, skills: frozenset[str], language: str) -> tuple[str, Callable[[Agent], bool]]:
    def has_skills(a: Agent) -> bool:
        return skills <= a.skills

    def speaks(a: Agent) -> bool:
        return language in a.languages

    if level == "skills_and_language":
        return f"skills {sorted(skills)} and language {language}", lambda a: has_skills(a) and speaks(a)
    if level == "skills":
        return f"skills {sorted(skills)} (any language)", has_skills
    if level == "language":
        return f"language {language} (skills missing)", speaks
    return "anyone available (no skill or language match)", lambda a: True


def skill_based(
    candidates: Sequence[Agent], skills: Collection[str], language: str, levels: Sequence[FallbackLevel]
) -> Pick | None:
    wanted = frozenset(skills)
    for number, level in enumerate(levels):
        label, predicate = _level_filter(level, wanted, language)
        matching = [a for a in candidates if predicate(a)]
        if matching:
            prefix = "fallback " if number else ""
            return least_loaded(matching, "skill_based", f"{prefix}{label}; ")
    return None


def pick(
    queue: QueueConfig,
    members: Sequence[Agent],
    *,
    now_ts: int,
    cursor: str | None,
    skills: Collection[str] = (),
    language: str = "ru",
    exclude: Collection[str] = (),
) -> Pick | None:
    """The agent for one ticket in `queue`, or None when nobody available may take it."""
    if queue.strategy == "none":
        return None
    candidates = [a for a in members if a.agent_id not in exclude and a.available(now_ts)]
    if queue.strategy == "round_robin":
        return round_robin(candidates, cursor)
    if queue.strategy == "least_loaded":
        return least_loaded(candidates)
    return skill_based(candidates, skills, language, queue.skill_fallbacks)
