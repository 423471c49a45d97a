"""The two subscriptions, both per-key batches (`ticketflow.messaging.per_key`, pattern (a)): a batch's
records are grouped by key, one key's records in order, keys concurrently (TICKETFLOW_NOTIFICATIONS_PARALLEL).

- `ticket.events` (group "notifications"), keyed by ticket: each event's notifications are delivered, and
  the batch's outcome events are written once, after its deliveries settle in the ledger (`after_batch`).
- `chat.replies` (group "notifications.replies"), keyed by conversation: the bot's replies outside the
  lifecycle. A reply whose delivery became a dead letter (in the ledger, for `redrive --key`) for a cause
  a person must fix is also dead-lettered here with the cause: without a ticket, it has no notification
  stream to show it in. One dead for a temporary cause (the destination down: `ledger.TEMPORARY_CAUSES`)
  is not, while the ledger redrives such deliveries by itself (TICKETFLOW_NOTIFICATIONS_AUTO_REDRIVE_SECONDS
  > 0): the record is valid and will be delivered (found by tests/chaos: BotX dead for a minute).

A record that does not decode goes to `<topic>.dlq` ("undecodable"), so does a bug ("unexpected error");
a store or broker outage is waited out, never dead-lettered (the pattern's rules). Delivery failures of
ticket messages are not dead letters of the topic: they stay in the ledger and NotificationFailed says so.
"""

from __future__ import annotations

from ticketflow.contracts.chat import ChatReply, chat_reply_decoder
from ticketflow.contracts.envelope import EventEnvelope, envelope_decoder
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.per_key import PerKeyBatches, per_key_batches
from ticketflow.messaging.records import Record
from ticketflow.notifications.adapters.ledger import is_temporary_cause
from ticketflow.notifications.app import Notifications
from ticketflow.notifications.settings import NotificationsSettings
from ticketflow.runtime.service import Runtime

MAX_RECORDS = 500
BATCH_TIMEOUT_MS = 10


def ticket_events(
    app: Notifications, dead_letters: DeadLetterWriter, *, parallel: int = 64
) -> PerKeyBatches[EventEnvelope]:
    batch = app.batch_outcomes()

    async def handle(envelope: EventEnvelope, record: Record) -> None:
        batch.add(await app.handle(envelope, record=False))

    return PerKeyBatches("notifications", envelope_decoder.decode, handle, dead_letters,
                         after_batch=batch.record, parallel=parallel)  # fmt: skip


def chat_replies(
    app: Notifications, dead_letters: DeadLetterWriter, *, parallel: int = 64, redriven_by_itself: bool = True
) -> PerKeyBatches[ChatReply]:
    """`redriven_by_itself`: the ledger redrives dead letters of temporary causes (auto-redrive is on)."""
    batch = app.batch_outcomes()

    async def handle(reply: ChatReply, record: Record) -> None:
        handled = batch.add(await app.reply(reply, record=False))
        for key, reason in handled.failures:  # dead in the ledger: `redrive --key` once the cause is fixed
            if redriven_by_itself and is_temporary_cause(reason):
                continue
            await dead_letters.send(record, "delivery failed", reason, reply_key=reply.reply_key, idempotency_key=key)

    return PerKeyBatches("notifications.replies", chat_reply_decoder.decode, handle, dead_letters,
                         after_batch=batch.record, parallel=parallel)  # fmt: skip


def subscribe(
    rt: Runtime, app: Notifications, settings: NotificationsSettings
) -> tuple[PerKeyBatches[EventEnvelope], PerKeyBatches[ChatReply]]:
    dead_letters = rt.dead_letters("notifications")
    events = ticket_events(app, dead_letters, parallel=settings.parallel)
    replies = chat_replies(app, dead_letters, parallel=settings.parallel,
                           redriven_by_itself=settings.auto_redrive_seconds > 0)  # fmt: skip
    for topic, group, worker in ((settings.topic, settings.group, events),
                                 (settings.replies_topic, settings.replies_group, replies)):  # fmt: skip
        per_key_batches(rt.broker, [topic], group, worker, max_records=MAX_RECORDS, batch_timeout_ms=BATCH_TIMEOUT_MS)
        rt.watch(topic, worker.waiting)
    return events, replies
