"""The envelope every stored or published event travels in."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from ticketflow.contracts.events import Event


# gc=False on the structs below and on the SLA events: frozen values of scalars, UUIDs, datetimes
# and tuples, which never form a reference cycle; a firing burst makes hundreds of thousands of them,
# and the cyclic GC would otherwise walk each one while it waits in the append queue.
class EventMetadata(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """Causality and tracing: correlation ties a whole conversation together, causation names the
    event or command that led to this one, traceparent/tracestate are W3C trace context."""

    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    traceparent: str | None = None
    tracestate: str | None = None


class NewEvent(msgspec.Struct, frozen=True, gc=False):
    """An event about to be appended: the store assigns stream version and global position."""

    event_id: uuid.UUID
    event: Event
    occurred_at: datetime
    metadata: EventMetadata = EventMetadata()


class EventEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A stored event as it is published on Kafka and read back from the store."""

    event_id: uuid.UUID
    stream_id: str
    stream_version: int
    occurred_at: datetime
    schema_version: int
    event: Event
    metadata: EventMetadata = EventMetadata()
    position: int | None = None


envelope_encoder = msgspec.json.Encoder()
envelope_decoder = msgspec.json.Decoder(EventEnvelope)
