"""Dead letters: listed newest first, one inspected whole, redriven (after a confirmation) to the topic
they came from, all or filtered by reason or age (`ticketflow.messaging.redrive`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ticketflow.cli.context import CliError, Context
from ticketflow.messaging.dead_letters import DeadLetter
from ticketflow.messaging.redrive import (
    DeadLetterFilter,
    NoDeadLetterTopic,
    RedriveResult,
    read_dead_letters,
    redrive,
)


def _when(ms: int | None) -> str:
    return "?" if ms is None else f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M:%S}"


def as_data(letter: DeadLetter) -> dict[str, Any]:
    return {
        "partition": letter.partition, "offset": letter.offset, "reason": letter.reason, "detail": letter.detail,
        "consumer": letter.consumer, "dead_lettered_at": _when(letter.at_ms), "original_topic": letter.original_topic,
        "original_partition": letter.original_partition, "original_offset": letter.original_offset,
        "context": letter.context, "key": (letter.key or b"").decode(errors="replace"),
        "value": letter.value.decode(errors="replace"),
        "headers": {n: v.decode(errors="replace") for n, v in letter.original_headers},
    }  # fmt: skip


async def _letters(ctx: Context, topic: str, limit: int) -> list[DeadLetter]:
    try:
        return await read_dead_letters(ctx.bootstrap, topic, limit=limit, security=ctx.security)
    except NoDeadLetterTopic as error:
        raise CliError(str(error)) from None


async def list_letters(ctx: Context, topic: str, limit: int) -> None:
    letters = await _letters(ctx, topic, limit)
    if not letters and not ctx.json:
        ctx.console.print(f"{topic}.dlq is empty: no dead letters", markup=False)
        return
    rows = [(f"{d.partition}:{d.offset}", _when(d.at_ms), d.reason, d.detail[:80], d.consumer,
             f"{d.original_topic}[{d.original_partition}]@{d.original_offset}") for d in letters]  # fmt: skip
    ctx.table(f"{len(letters)} newest dead letter(s) of {topic}.dlq", ("at", "when", "reason", "detail", "consumer",
              "from"), rows, [as_data(d) for d in letters])  # fmt: skip


async def inspect(ctx: Context, topic: str, where: str, scan: int) -> None:
    """One dead letter whole: `where` is `partition:offset`, or an offset of partition 0."""
    partition, _, offset = where.rpartition(":")
    if not offset.isdigit() or (partition and not partition.isdigit()):
        raise CliError(f"a dead letter is named partition:offset or offset, not {where!r}")
    wanted = (int(partition or 0), int(offset))
    found = [d for d in await _letters(ctx, topic, scan) if (d.partition, d.offset) == wanted]
    if not found:
        raise CliError(f"no dead letter at {where} among the newest {scan} of {topic}.dlq (--scan more)")
    data = as_data(found[0])
    ctx.emit(data, "\n".join(f"{k}: {v}" for k, v in data.items()))


async def run_redrive(ctx: Context, topic: str, which: DeadLetterFilter, limit: int, group: str) -> RedriveResult:
    try:
        result = await redrive(ctx.bootstrap, topic, which=which, limit=limit, security=ctx.security, group=group)
    except NoDeadLetterTopic as error:
        raise CliError(str(error)) from None
    ctx.emit({"topic": topic, "read": result.read, "redriven": result.redriven, "left": result.left},
             result.describe())  # fmt: skip
    return result
