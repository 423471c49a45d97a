"""What a delivery's outcome becomes in the ticket's notification stream. Pure: no I/O.

DELIVERED and DUPLICATE record NotificationDelivered (a DUPLICATE fills the gap when the first run died
between the delivery and the append; otherwise the id is already stored and nothing is written);
DEAD_LETTER records NotificationFailed; UNKNOWN records NotificationOutcomeUnknown (the agent checks the
chat); IN_FLIGHT records nothing (that worker, or `recover_stale`, will). Event ids derive from the
idempotency key (and, for failures and unknown outcomes, the attempt count, so a redriven delivery that
fails again records its new outcome): recording the same outcome twice writes nothing new.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from ticketflow.contracts import notification_events as ne
from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.ids import deterministic_event_id
from ticketflow.notifications.domain.model import DeliveryOutcome, Notification, OutcomeStatus

Result = tuple[uuid.UUID, Notification, DeliveryOutcome]  # (ticket id, what, how it went)


def outcome_event(ticket_id: uuid.UUID, n: Notification, outcome: DeliveryOutcome, at: datetime) -> NewEvent | None:
    attempts = max(outcome.attempts, 1)
    event: ne.NotificationEvent
    if outcome.status in (OutcomeStatus.DELIVERED, OutcomeStatus.DUPLICATE):
        event_id = deterministic_event_id("notification", n.key, "delivered")
        event = ne.NotificationDelivered(ticket_id, n.key, n.channel.value, n.recipient, n.template, at, attempts)
    elif outcome.status is OutcomeStatus.DEAD_LETTER:
        event_id = deterministic_event_id("notification", n.key, "failed", outcome.attempts)
        reason = outcome.reason or "unknown"
        event = ne.NotificationFailed(ticket_id, n.key, n.channel.value, n.recipient, n.template, reason, True, at,
                                      attempts)  # fmt: skip
    elif outcome.status is OutcomeStatus.UNKNOWN:
        event_id = deterministic_event_id("notification", n.key, "unknown", outcome.attempts)
        event = ne.NotificationOutcomeUnknown(ticket_id, n.key, n.channel.value, n.recipient, n.template,
                                              outcome.reason or "unknown", at, attempts)  # fmt: skip
    else:
        return None  # in flight elsewhere: that worker (or recover_stale) records it
    return NewEvent(event_id, event, at)
