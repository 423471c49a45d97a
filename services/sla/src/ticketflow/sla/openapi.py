"""The OpenAPI document of the SLA service's `/sla/status` (`http.py`)."""

from __future__ import annotations

from typing import Any

import msgspec

from ticketflow.runtime.openapi import Operation, document


class SlaStatus(msgspec.Struct, frozen=True):
    """What this instance owns and has done (`http.describe`); `{"starting": true}` before its first round."""

    partitions: list[int] | None = None
    live: list[int] | None = None
    timers: int | None = None
    events: int | None = None
    fired: int | None = None
    queued_events: int | None = None
    flushes: int | None = None
    dead_letters: int | None = None
    checkpoints: int | None = None
    starting: bool | None = None


def openapi() -> dict[str, Any]:
    return document("sla", "Business-hours SLA clocks as durable timers, owned per partition of ticket.events.", [
        Operation("get", "/sla/status", "the partitions this instance owns, its timers and counters",
                  {200: ("status", SlaStatus)}),
    ])  # fmt: skip
