"""The SLA domain (pure: no I/O): one ticket's SLA state, the decider that turns lifecycle events into
SLA events, and the clock arithmetic under it.

    state.py          TicketSla, Emitted, Decision; deterministic event ids
    decider.py        decide(event, state, at, cause, rules), advance(state, now, rules): the lifecycle rules
    run.py            Run: one decision under way, and the elementary clock transitions
    firing.py         the warning ladder: levels due by a time, `firings` (what the timer wheel holds)
    recalculation.py  priority, track, calendar and target changes (SlaRecalculated)
    exclusion.py      tickets without SLA, and moves into and out of it
    replay.py         evolve(clocks, sla_event, at): clocks rebuilt from the SLA stream
    clocks.py         Clock and its business-time arithmetic
    policies.py       Policy, Calendar and the Rules port (desk configuration as the domain sees it)
"""

from ticketflow.sla.domain.clocks import Clock
from ticketflow.sla.domain.decider import advance, decide
from ticketflow.sla.domain.firing import firings
from ticketflow.sla.domain.policies import TARGETS, Calendar, Policy, Rules, RulesError
from ticketflow.sla.domain.recalculation import configuration_changed
from ticketflow.sla.domain.replay import evolve
from ticketflow.sla.domain.state import Decision, Emitted, TicketSla, event_id_of, utc

__all__ = [
    "TARGETS",
    "Calendar",
    "Clock",
    "Decision",
    "Emitted",
    "Policy",
    "Rules",
    "RulesError",
    "TicketSla",
    "advance",
    "configuration_changed",
    "decide",
    "event_id_of",
    "evolve",
    "firings",
    "utc",
]
