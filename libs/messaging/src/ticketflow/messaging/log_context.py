"""What a log line is about: the ticket and the event (or command) being handled, in context variables
that the runtime's JSON log formatter adds to every line written meanwhile (`ticket_id`, `event_id`).

The consumption patterns set them per record from the decoded item (an `EventEnvelope`, a
`CommandEnvelope`, a `ChatReply`); a service may set them around work of its own with `about`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

TICKET_ID: ContextVar[str | None] = ContextVar("ticketflow_ticket_id", default=None)
EVENT_ID: ContextVar[str | None] = ContextVar("ticketflow_event_id", default=None)
_STREAM_PREFIX = "ticket-"


def ids_of(item: object) -> tuple[str | None, str | None]:
    """(ticket id, event or command id) of a decoded record, where it names them."""
    event = getattr(item, "event_id", None) or getattr(item, "command_id", None)
    ticket = getattr(item, "ticket_id", None)
    if ticket is None:
        stream = getattr(item, "stream_id", None)
        if isinstance(stream, str) and stream.startswith(_STREAM_PREFIX):
            ticket = stream.removeprefix(_STREAM_PREFIX)
        else:
            ticket = getattr(getattr(item, "command", None), "ticket_id", None)
    return (str(ticket) if ticket is not None else None), (str(event) if event is not None else None)


@contextlib.contextmanager
def about(ticket_id: object = None, event_id: object = None) -> Iterator[None]:
    ticket = TICKET_ID.set(str(ticket_id) if ticket_id is not None else None)
    event = EVENT_ID.set(str(event_id) if event_id is not None else None)
    try:
        yield
    finally:
        EVENT_ID.reset(event)
        TICKET_ID.reset(ticket)
