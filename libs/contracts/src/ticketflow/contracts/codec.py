"""Decoding stored events across schema versions.

Rules for evolving a schema (docs/contracts.md):
- a new field gets a default, so old rows still decode: no version bump needed;
- a renamed, split or retyped field bumps the class's `schema_version` and registers an upcaster
  `(type, old_version) -> fn(dict) -> dict` that rewrites the stored JSON one version up;
- stored rows are never rewritten: upcasting happens on read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventType(ValueError):
    pass


class EventCodec:
    """Encodes events to stored JSON and decodes (type, schema_version, json) back, upcasting on the way."""

    def __init__(
        self,
        types: Mapping[str, type[msgspec.Struct]],
        upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
    ) -> None:
        self._types = dict(types)
        self._upcasters = dict(upcasters or {})
        self._decoders = {name: msgspec.json.Decoder(cls) for name, cls in self._types.items()}
        self._encoder = msgspec.json.Encoder()

    def current_version(self, event_type: str) -> int:
        return int(getattr(self._type(event_type), "schema_version", 1))

    def encode(self, event: msgspec.Struct) -> bytes:
        return self._encoder.encode(event)

    def encode_document(self, document: object) -> bytes:
        """A JSON document that embeds events (e.g. a batch for one SQL statement), each encoded
        exactly as `encode` would: one C call for the whole batch instead of one per event."""
        return self._encoder.encode(document)

    def decode(self, event_type: str, schema_version: int, data: bytes | str) -> msgspec.Struct:
        current = self.current_version(event_type)
        if schema_version == current:
            return self._decoders[event_type].decode(data)  # type: ignore[no-any-return]
        if schema_version > current:
            raise UnknownEventType(f"{event_type} v{schema_version} is newer than this code (v{current})")
        raw: dict[str, Any] = msgspec.json.decode(data)
        for version in range(schema_version, current):
            upcast = self._upcasters.get((event_type, version))
            if upcast is None:
                raise UnknownEventType(f"no upcaster for {event_type} v{version} -> v{version + 1}")
            raw = upcast(raw)
        return msgspec.convert(raw, self._type(event_type))

    def _type(self, event_type: str) -> type[msgspec.Struct]:
        try:
            return self._types[event_type]
        except KeyError:
            raise UnknownEventType(f"unknown event type {event_type!r}") from None


def default_codec() -> EventCodec:
    from ticketflow.contracts.events import EVENT_TYPES
    from ticketflow.contracts.upcasters import UPCASTERS

    return EventCodec(EVENT_TYPES, UPCASTERS)
