"""Properties of the strategies alone (hypothesis): round-robin turns, least-loaded choice, hard limits."""

from __future__ import annotations

import uuid
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from ticketflow.routing.domain.config import QueueConfig
from ticketflow.routing.domain.roster import PRIORITY_WEIGHT, Agent
from ticketflow.routing.domain.strategies import pick, round_robin

agents_st = st.lists(
    st.builds(
        lambda i, capacity, status, load: (i, capacity, status, load),
        st.integers(0, 50),
        st.integers(1, 8),
        st.sampled_from(["online", "online", "away", "offline"]),
        st.integers(0, 8),
    ),
    min_size=1,
    max_size=12,
    unique_by=lambda a: a[0],
)


def make(spec: list[tuple[int, int, str, int]]) -> list[Agent]:
    out = []
    for i, capacity, status, load in sorted(spec):
        agent = Agent(f"a{i:02}", {"q"}, capacity=capacity, status=status)  # type: ignore[arg-type]
        for _ in range(min(load, capacity + 1)):  # some are over capacity (capacity lowered later)
            agent.open_tickets[uuid.uuid4()] = PRIORITY_WEIGHT["normal"]
            agent.load += PRIORITY_WEIGHT["normal"]
        out.append(agent)
    return out


@settings(max_examples=200)
@given(st.integers(1, 15), st.integers(0, 200), st.integers(0, 20))
def test_round_robin_turns_differ_by_at_most_one(agents: int, picks: int, start: int) -> None:
    candidates = [Agent(f"a{i:02}", {"q"}, status="online") for i in range(agents)]
    cursor: str | None = f"a{start:02}" if start < agents else None
    counts: Counter[str] = Counter()
    for _ in range(picks):
        chosen = round_robin(candidates, cursor)
        assert chosen is not None
        counts[chosen.agent_id] += 1
        cursor = chosen.agent_id
    assert max(counts.values(), default=0) - min((counts[a.agent_id] for a in candidates), default=0) <= 1


@settings(max_examples=300)
@given(agents_st, st.sampled_from(["round_robin", "least_loaded", "skill_based"]))
def test_every_strategy_picks_only_available_agents_and_least_loaded_picks_the_lowest_ratio(
    spec: list[tuple[int, int, str, int]], strategy: str
) -> None:
    agents = make(spec)
    queue = QueueConfig(id="q", desk="d", strategy=strategy)  # type: ignore[arg-type]
    chosen = pick(queue, agents, now_ts=0, cursor=None, skills=("x",), language="ru")
    available = [a for a in agents if a.status == "online" and len(a.open_tickets) < a.capacity]
    if not available:
        assert chosen is None
        return
    assert chosen is not None
    winner = next(a for a in agents if a.agent_id == chosen.agent_id)
    assert winner in available
    if strategy != "round_robin":  # skill_based falls back to anyone here (no agent has skill x)
        assert winner.load / winner.capacity == min(a.load / a.capacity for a in available)
