"""Identifiers: time-ordered UUIDv7 event ids and stream-id conventions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from hashlib import sha1

import msgspec
import uuid6


def new_event_id() -> uuid.UUID:
    """A UUIDv7: sorts by creation time, so event ids double as a rough timeline in logs."""
    return uuid.UUID(bytes=uuid6.uuid7().bytes)


def new_ticket_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid6.uuid7().bytes)


def deterministic_event_id(*parts: object) -> uuid.UUID:
    """An id derived from the inputs, for effects that must be exactly-once under replay
    (an SLA warning for (ticket, target, deadline, level) always gets the same id).

    The UUIDv5 of the parts joined by "|" (`uuid.uuid5(_NAMESPACE, name)`, byte for byte), computed
    without uuid5's integer round trip: the SLA decider makes one or two per lifecycle event."""
    digest = bytearray(sha1(_NAMESPACE_BYTES + "|".join(map(str, parts)).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return uuid.UUID(bytes=bytes(digest))


_NAMESPACE = uuid.UUID("6b1e8f3a-6c1d-4a53-9a44-1f1c6f3f2a10")
_NAMESPACE_BYTES = _NAMESPACE.bytes


def ticket_number(ticket_id: uuid.UUID) -> str:
    """The number people see ("TF-1A2B3C4D"): short and stable, the random tail of the UUIDv7 id. Every
    text that names a ticket to a person (notifications, intake's /status answer) uses this one."""
    return "TF-" + ticket_id.hex[-8:].upper()


def ticket_stream(ticket_id: uuid.UUID) -> str:
    return f"ticket-{ticket_id}"


def sla_stream(ticket_id: uuid.UUID) -> str:
    return f"sla-{ticket_id}"


def sla_streams(ticket_ids: Sequence[uuid.UUID]) -> list[str]:
    """`sla_stream` of many tickets: msgspec turns all the UUIDs to text in one C call (`str(uuid)`
    is pure Python, a microsecond each; the SLA writer names a stream per firing)."""
    return ["sla-" + text for text in _texts.decode(_uuid_encoder.encode(ticket_ids))]


_uuid_encoder = msgspec.json.Encoder()
_texts = msgspec.json.Decoder(list[str])


def agent_stream(agent_id: str) -> str:
    return f"agent-{agent_id}"


def notification_stream(ticket_id: uuid.UUID) -> str:
    return f"notification-{ticket_id}"
