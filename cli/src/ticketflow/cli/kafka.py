"""Kafka as an operator sees it: topics tailed with their records decoded by the contracts, the declared
topics created, and every consumer group's lag per partition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ticketflow.cli.context import CliError, Context
from ticketflow.messaging.dead_letters import DeadLetter
from ticketflow.messaging.topics import CONTRACTS, TOPICS, ensure_topics


def decoder_for(topic: str) -> Callable[[bytes], Any]:
    contract = CONTRACTS.get(topic.removesuffix(".dlq"))
    if contract is None:
        raise CliError(f"{topic} carries no known contract; topics: {', '.join(sorted(CONTRACTS))}")
    decoder = msgspec.json.Decoder(contract)
    return decoder.decode


def decoded(topic: str, record: ConsumerRecord[bytes, bytes], decode: Callable[[bytes], Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {"topic": topic, "partition": record.partition, "offset": record.offset,
                             "key": (record.key or b"").decode(errors="replace")}  # fmt: skip
    try:
        shown["value"] = decode(record.value or b"")
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        shown["undecodable"] = f"{error}: {(record.value or b'')[:200]!r}"
    if topic.endswith(".dlq"):
        letter = DeadLetter.of(record)
        shown["dead_letter"] = {"reason": letter.reason, "detail": letter.detail, "consumer": letter.consumer}
    return shown


async def tail(
    ctx: Context, topics: Sequence[str], *, from_beginning: bool, limit: int | None, idle_s: float | None
) -> int:
    """Print each record of `topics` decoded, as it comes (until `limit` records, or `idle_s` without one)."""
    decoders = {t: decoder_for(t) for t in topics}
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=ctx.bootstrap, enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest", **ctx.security.client_options(),
    )  # fmt: skip
    shown = 0
    try:
        await consumer.start()
        while limit is None or shown < limit:
            try:
                record = await asyncio.wait_for(consumer.getone(), idle_s)
            except TimeoutError:
                break
            item = decoded(record.topic, record, decoders[record.topic])
            text = f"{record.topic}[{record.partition}]@{record.offset} {item.get('key', '')}: "
            body = item.get("value", item.get("undecodable"))
            ctx.emit(item, text + (msgspec.json.encode(body).decode() if "value" in item else str(body)))
            shown += 1
    finally:
        await consumer.stop()
    return shown


async def create_topics(ctx: Context, replication_factor: int) -> None:
    created = await ensure_topics(ctx.bootstrap, security=ctx.security, replication_factor=replication_factor)
    rows = [("created" if t.name in created else "exists", t.name, t.partitions, t.cleanup_policy, t.description)
            for t in TOPICS]  # fmt: skip
    ctx.table("topics declared in ticketflow.messaging.topics", ("", "topic", "partitions", "cleanup", "carries"), rows)


async def lag(ctx: Context, groups: Sequence[str]) -> list[dict[str, Any]]:
    """Committed offset, end offset and lag of every partition every consumer group (or `groups`) reads."""
    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.bootstrap, **ctx.security.client_options())
    consumer = AIOKafkaConsumer(bootstrap_servers=ctx.bootstrap, **ctx.security.client_options())
    try:
        await admin.start()
        await consumer.start()
        names = list(groups) or sorted(g[0] for g in await admin.list_consumer_groups())
        rows: list[dict[str, Any]] = []
        for group in names:
            committed: dict[TopicPartition, Any] = await admin.list_consumer_group_offsets(group)
            ends = await consumer.end_offsets(list(committed)) if committed else {}
            for tp in sorted(committed, key=lambda tp: (tp.topic, tp.partition)):
                offset = committed[tp].offset
                rows.append({"group": group, "topic": tp.topic, "partition": tp.partition, "committed": offset,
                             "end": ends[tp], "lag": ends[tp] - offset if offset >= 0 else ends[tp]})  # fmt: skip
    finally:
        await consumer.stop()
        await admin.close()
    if groups and not rows:
        raise CliError(f"no committed offsets for {', '.join(groups)}: unknown group, or it never committed")
    table = [(r["group"], r["topic"], r["partition"], r["committed"], r["end"], r["lag"]) for r in rows]
    ctx.table("consumer lag", ("group", "topic", "partition", "committed", "end", "lag"), table, rows)
    return rows
