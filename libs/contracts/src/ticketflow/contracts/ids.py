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
    without uuid5's round trips: the SLA decider makes one per firing, tens of thousands a second."""
    digest = sha1(_NAMESPACE_BYTES + "|".join(map(str, parts)).encode()).digest()
    return _uuid_of_int((int.from_bytes(digest[:16]) & _KEEP) | _VERSION_5_RFC_4122)


def _uuid_of_int(value: int) -> uuid.UUID:
    """`uuid.UUID(int=value)` without its argument checks (value is 128 bits by construction)."""
    made = _new_uuid(uuid.UUID)
    _set(made, "int", value)
    _set(made, "is_safe", uuid.SafeUUID.unknown)
    return made


_new_uuid, _set = object.__new__, object.__setattr__
_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)  # clear the version and variant bits
_VERSION_5_RFC_4122 = (0x5000 << 64) | (0x8000 << 48)


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
