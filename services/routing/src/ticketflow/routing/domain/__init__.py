"""Routing's domain: pure (no clock, database or broker), folded from events alone.

- `config`: queues, tiers, rules, calendars (the desk configuration, validated);
- `state`: `RoutingState`, folded from ticket and agent events (`apply_envelope`, `rebuild`);
- `roster`: agents, their availability and loads;
- `rules`: which queue a ticket goes to, and why;
- `strategies`: which available agent of a queue takes the next ticket;
- `reassignment`: when an unanswered assignment is taken away;
- `decisions`: `decide_ready`, `decide_backlog`, `decide_reassignment`, `decide_command`: (state, trigger,
  time) -> the ticket events to append and the version to append them at.

Unlike the house's one-stream deciders (`decide(command, state) -> events`, `evolve(state, event)`),
routing decides over the whole state (every open ticket, every agent's load, each queue's cursor), so
its decisions take (state, trigger, time) and the state is evolved in place (`RoutingState.apply_*`,
mutable for speed; see docs/benchmarks.md). Each decision still goes through the ticket lifecycle's
`decide(command, ticket_state)`, so routing cannot make a transition the lifecycle forbids.
"""
