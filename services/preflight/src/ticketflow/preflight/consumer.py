"""Preflight's subscription: ticket events in per-key batches (`ticketflow.messaging.per_key`): one
ticket's events in order, the tickets of a batch examined at once, so one slow portal holds only its own
tickets. A record that is not an envelope, or names a ticket, desk or track preflight cannot act on, is a
dead letter with its cause; a database outage waits and retries."""

from __future__ import annotations

import logging

from ticketflow.contracts.envelope import EventEnvelope, envelope_decoder
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.per_key import PerKeyBatches, per_key_batches
from ticketflow.messaging.records import Record
from ticketflow.preflight.app import Preflight, Rejected
from ticketflow.preflight.settings import PreflightSettings
from ticketflow.runtime.service import Runtime

log = logging.getLogger("ticketflow.preflight")


def worker(preflight: Preflight, dead_letters: DeadLetterWriter, parallel: int) -> PerKeyBatches[EventEnvelope]:
    async def on_event(envelope: EventEnvelope, record: Record) -> None:
        outcome = await preflight.handle(envelope)
        log.info("%s %s -> %s", type(envelope.event).__name__, envelope.stream_id, outcome)

    return PerKeyBatches("preflight", envelope_decoder.decode, on_event, dead_letters, bad_input=(Rejected,),
                         parallel=parallel)  # fmt: skip


def subscribe(rt: Runtime, preflight: Preflight, settings: PreflightSettings) -> PerKeyBatches[EventEnvelope]:
    events = worker(preflight, rt.dead_letters("preflight"), settings.batch)
    per_key_batches(rt.broker, [settings.topic], settings.group, events, max_records=settings.batch,
                    batch_timeout_ms=20)  # fmt: skip
    rt.watch(settings.topic, events.waiting)
    return events
