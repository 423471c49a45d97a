"""The OpenAPI document of the projector's dashboard API (`http.py`)."""

from __future__ import annotations

from typing import Any

import msgspec

from ticketflow.projector.http import FILTERS
from ticketflow.runtime.openapi import ErrorBody, Operation, document


class TicketSummary(msgspec.Struct, frozen=True):
    """A row of the `ticket_summaries` read model (columns of `domain.summary.COLUMNS`)."""

    ticket_id: str
    desk_id: str | None = None
    status: str | None = None


class TicketList(msgspec.Struct, frozen=True):
    tickets: list[dict[str, Any]]


class Stats(msgspec.Struct, frozen=True):
    by_desk_and_status: list[dict[str, Any]]


def openapi() -> dict[str, Any]:
    filters = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in FILTERS]
    limit = {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "maximum": 1000}}
    ticket = {"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
    return document("projector", "The dashboard's read models (rebuildable from the event store).", [
        Operation("get", "/v1/tickets", "tickets, newest first, filtered by equality on the named columns",
                  {200: ("tickets", TicketList), 400: ("an unknown parameter, or a bad limit", ErrorBody)},
                  parameters=[*filters, limit]),
        Operation("get", "/v1/tickets/{ticket_id}", "one ticket's summary",
                  {200: ("the summary (every column)", TicketSummary), 400: ("not a UUID", ErrorBody),
                   404: ("no such ticket", ErrorBody)}, parameters=[ticket]),
        Operation("get", "/v1/stats", "tickets, SLA breaches and warnings per desk and status",
                  {200: ("counts", Stats)}),
    ])  # fmt: skip
