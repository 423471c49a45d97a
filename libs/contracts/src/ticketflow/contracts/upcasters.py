"""Registered upcasters for stored events, keyed by (event type, version they upgrade from).

None yet: every event is at schema version 1. Add one here when a field is renamed or split,
together with a test that decodes a stored row of the old version (see tests/contracts)."""

from __future__ import annotations

from ticketflow.contracts.codec import Upcaster

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
