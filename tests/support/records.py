"""Kafka records and a producer double for tests of the consumption patterns without a broker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 1_700_000_000_000
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class RecordingProducer:
    """`send_and_wait` keeps what was sent; `fail` makes it raise as an unreachable broker does."""

    fail: BaseException | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def send_and_wait(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Any = ()) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": list(headers)})
