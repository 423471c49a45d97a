"""Every read model the projector keeps, each a projection with its own checkpoint (docs/queries.md)."""

from __future__ import annotations

import functools
from typing import Any

from ticketflow.contracts import roster_events as r
from ticketflow.contracts import sla_events as s
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.deskconfig import DeskRegistry
from ticketflow.eventstore.projections import Projection
from ticketflow.projector.adapters.backlog_history import BacklogHistoryProjection
from ticketflow.projector.adapters.keyed import KeyedProjection, KeyedRows
from ticketflow.projector.adapters.register import RegisterProjection
from ticketflow.projector.adapters.rows import RowTable
from ticketflow.projector.adapters.sla_board import SlaBoardProjection
from ticketflow.projector.adapters.tickets import TicketsProjection
from ticketflow.projector.domain import agents, backlog, metrics
from ticketflow.projector.domain.desk_time import RegistryDeskTime
from ticketflow.projector.domain.lifecycle import is_ticket_event


def lifecycle_ticket(envelope: EventEnvelope) -> Any:
    return envelope.event.ticket_id if is_ticket_event(envelope.event) else None  # type: ignore[union-attr]


def metric_ticket(envelope: EventEnvelope) -> Any:
    event = envelope.event
    return event.ticket_id if is_ticket_event(event) or isinstance(event, s.SlaBreached | s.SlaMet) else None  # type: ignore[union-attr]


def agent_of(envelope: EventEnvelope) -> Any:
    return envelope.event.agent_id if isinstance(envelope.event, r.AgentEvent.__args__) else None  # type: ignore[attr-defined,union-attr]


def read_models(desks: DeskRegistry) -> list[Projection]:
    desk_time = RegistryDeskTime(desks)
    backlog_rows = RowTable("queue_backlog", backlog.BacklogTicket, ("ticket_id",))
    agent_rows = RowTable("agent_load", agents.AgentRow, ("agent_id",))
    held_rows = RowTable("agent_load_tickets", agents.HeldTicket, ("ticket_id",))
    metric_rows = RowTable("desk_metric_tickets", metrics.MetricTicket, ("ticket_id",))
    return [
        TicketsProjection(),
        KeyedProjection("queue_backlog", KeyedRows(backlog_rows, lifecycle_ticket, backlog.apply)),
        SlaBoardProjection(desk_time.queue_track),
        KeyedProjection(
            "agent_load",
            KeyedRows(agent_rows, agent_of, agents.apply_agent),
            KeyedRows(held_rows, lifecycle_ticket, agents.apply_ticket),
        ),
        KeyedProjection(
            "desk_metrics",
            KeyedRows(metric_rows, metric_ticket, functools.partial(metrics.apply, desks=desk_time)),
        ),
        RegisterProjection(),
        BacklogHistoryProjection(),
    ]


NAMES = (
    "tickets",
    "queue_backlog",
    "sla_board",
    "agent_load",
    "desk_metrics",
    "organisation_register",
    "backlog_history",
)
