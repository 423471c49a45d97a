"""The ticket lifecycle as a pure decider (no I/O): `decide(command, state) -> events`,
`evolve(state, event) -> state`, `fold(events) -> state`."""

from ticketflow.lifecycle.decider import decide, evolve, fold, initial_state
from ticketflow.lifecycle.state import IllegalTransition, Status, TicketState

__all__ = ["IllegalTransition", "Status", "TicketState", "decide", "evolve", "fold", "initial_state"]
