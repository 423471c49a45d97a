"""The projector's pure part: how each event changes each read model. No I/O.

- `lifecycle`: status, priority, queue and assignee followed with the lifecycle decider's own `evolve`
- `tickets`: one ticket's document (state, conversation, SLA clocks, deliveries, timeline) and list row
- `clocks`: SLA clocks as the sla service's events tell them
- `backlog`, `sla_board`, `agents`, `metrics`, `register`: the other read models' rows
"""
