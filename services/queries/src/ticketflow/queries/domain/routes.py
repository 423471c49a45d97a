"""What each route takes (pure): its parameters, declared once for validation and for the OpenAPI document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ticketflow.contracts.values import PRIORITIES
from ticketflow.contracts.views import SLA_STATES
from ticketflow.lifecycle import Status
from ticketflow.queries.domain.params import (
    MAX_TEXT,
    Param,
    Params,
    consistency_params,
    day,
    instant,
    int_param,
    list_param,
    one_of,
    page_params,
    words,
)

STATUSES = tuple(s.value for s in Status if s is not Status.NEW)
# sort name -> (column, descending, cursor kind of the column)
TICKET_SORTS: dict[str, tuple[str, bool, str]] = {
    "-opened_at": ("opened_at", True, "datetime"),
    "opened_at": ("opened_at", False, "datetime"),
    "-updated_at": ("updated_at", True, "datetime"),
    "updated_at": ("updated_at", False, "datetime"),
    "priority": ("priority_rank", False, "int"),  # urgent first, oldest first within a priority
    "-priority": ("priority_rank", True, "int"),
    "sla_due_at": ("due_sort", False, "datetime"),  # the most urgent deadline first; no running clock last
}
FEATURE_OUTCOMES = ("in_sprint", "planned", "declined", "none")
AGENT_STATUSES = ("online", "away", "offline")
UNASSIGNED = "none"
NO_QUEUE = "none"  # queue=none in the backlog's history: tickets waiting to be routed
MAX_HOURS = 24 * 93  # a quarter  # assignee=none: tickets nobody is assigned to


@dataclass(frozen=True)
class RouteParams:
    tickets: Params
    ticket: Params
    backlog: Params
    sla_board: Params
    agents: Params
    metrics: Params
    backlog_history: Params
    first_responses: Params
    organisations: Params
    register: Params
    plain: Params


def route_params(desk_ids: Sequence[str], *, max_limit: int, max_wait_ms: int) -> RouteParams:
    waiting = consistency_params(max_wait_ms)
    days = (
        Param(
            "from",
            "the first day (YYYY-MM-DD; default: 29 days before `to`)",
            {"type": "string", "format": "date"},
            day,
        ),
        Param(
            "to",
            "the last day (YYYY-MM-DD; default: today in the desk's time zone)",
            {"type": "string", "format": "date"},
            day,
        ),
    )
    paging = page_params(max_limit)
    queue = list_param("queue", "queue ids")
    assignee = list_param("assignee", f"agent ids ({UNASSIGNED}: nobody assigned)")
    priority = list_param("priority", "priorities", PRIORITIES)
    sort = Param(
        "sort",
        "the order: a column, '-' for descending; ties broken by ticket id",
        {"type": "string", "enum": list(TICKET_SORTS), "default": "-opened_at"},
        one_of(tuple(TICKET_SORTS)),
        "-opened_at",
    )
    search = Param(
        "q",
        "words of the conversation (customer messages and agent replies), each matched as a word start; all must occur",
        {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        words,
    )
    return RouteParams(
        tickets=Params(
            (
                list_param("desk", "desk ids (default: every desk the token reads)", desk_ids),
                list_param("status", "ticket statuses", STATUSES),
                queue,
                assignee,
                priority,
                list_param("sla_state", "SLA states (the worst of the ticket's clocks)", SLA_STATES),
                list_param("category", "categories (preflight's, or referral's)"),
                list_param("organisation", "customer organisations (platform:tenant)"),
                search,
                sort,
                *paging,
                *waiting,
            )
        ),
        ticket=Params(waiting),
        backlog=Params((queue, priority, *waiting)),
        sla_board=Params(
            (
                int_param(
                    "within", "at risk: due within this many business minutes (the clock's calendar)", 1, 10_080, 60
                ),
                queue,
                assignee,
                priority,
                int_param("limit", "clocks per section", 1, max_limit, min(50, max_limit)),
                *waiting,
            )
        ),
        agents=Params((list_param("status", "agent statuses", AGENT_STATUSES), *paging, *waiting)),
        metrics=Params((*days, *waiting)),
        backlog_history=Params(
            (
                int_param("hours", "how many hours, ending with the hour of `until`", 1, MAX_HOURS, 48),
                Param(
                    "until",
                    "an instant in the last hour shown (ISO 8601 with an offset; default: now)",
                    {"type": "string", "format": "date-time"},
                    instant,
                ),
                list_param("queue", f"queue ids ({NO_QUEUE}: ready, waiting to be routed)"),
                *waiting,
            )
        ),
        first_responses=Params((*days, *waiting)),
        organisations=Params(waiting),
        register=Params(
            (
                list_param("status", "ticket statuses", STATUSES),
                list_param(
                    "feature_outcome", f"feature-request outcomes ({FEATURE_OUTCOMES[-1]}: not set)", FEATURE_OUTCOMES
                ),
                list_param("category", "categories"),
                *paging,
                *waiting,
            )
        ),
        plain=Params(()),
    )
