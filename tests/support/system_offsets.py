"""How far each service of a System (tests/support/system.py) has read: records published on each of the
run's topics (end offsets, transaction markers included) and the offsets each service's consumer groups
have passed (SLA: its own checkpoints in PostgreSQL, `sla_partition_checkpoints`, where a new owner starts);
its lag is the records it has still to read after them (read_committed, as every service reads: the
relay's transaction markers take offsets of their own, and a group that committed its last record's
offset + 1 stays before the final marker with nothing left to read). Used by the chaos run (tests/chaos)
and bench-system (tests/load/system)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from support.system import PrivateTopics

CONSUMERS = ("intake", "preflight", "routing", "sla", "notifications")


def consumed_topics(topics: PrivateTopics) -> dict[str, dict[str, list[str]]]:
    """Per service: its consumer groups and the topics each reads (tests/support/system.py names them)."""
    group = f"-{topics.ticket_events}"
    return {
        "intake": {f"intake{group}": [topics.chat_inbound], f"intake{group}-commands": [topics.ticket_commands]},
        "preflight": {f"preflight{group}": [topics.ticket_events]},
        "routing": {f"routing{group}": [topics.ticket_events, topics.agent_events]},
        "sla": {f"sla{group}": [topics.ticket_events]},
        "notifications": {f"notifications{group}": [topics.ticket_events],
                          f"notifications{group}-replies": [topics.chat_replies]},
    }  # fmt: skip


@dataclass
class Offsets:
    published: dict[str, int]  # topic -> records (end offsets, transaction markers included)
    consumed: dict[str, int]  # service -> offsets its groups (SLA: its checkpoints) have passed
    lag: dict[str, int]  # service -> records on its topics after what it passed


async def offsets(bootstrap: str, topics: PrivateTopics, pool: asyncpg.Pool) -> Offsets:
    names = [t for t in topics.all if not t.endswith(".dlq")]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level="read_uncommitted")
    await consumer.start()
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                              isolation_level="read_committed")  # fmt: skip
    await reader.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
        partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
        assert len({tp.topic for tp in partitions}) == len(names), described  # every topic counted
        ends = await consumer.end_offsets(partitions)
        published = Counter({t: 0 for t in names})
        for tp, end in ends.items():
            published[tp.topic] += end
        consumed: dict[str, int] = {}
        lag: dict[str, int] = {}
        for service, groups in consumed_topics(topics).items():
            passed: dict[TopicPartition, int] = {}
            if service == "sla":
                rows = await pool.fetch("SELECT topic, partition, next_offset FROM sla_partition_checkpoints"
                                        " WHERE topic = $1", topics.ticket_events)  # fmt: skip
                passed = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
            else:
                for group in groups:
                    committed = await admin.list_consumer_group_offsets(group)
                    passed.update({tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0})
            read = [t for ts in groups.values() for t in ts]
            consumed[service] = sum(passed.values())
            lag[service] = 0
            for tp, end in ends.items():
                if tp.topic in read and passed.get(tp, 0) < end:
                    lag[service] += await records_between(reader, tp, passed.get(tp, 0), end)
        return Offsets(dict(published), consumed, lag)
    finally:
        await admin.close()
        await consumer.stop()
        await reader.stop()


async def records_between(reader: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int) -> int:
    """Committed records of `tp` in [start, end) (transaction markers and aborted records are none)."""
    reader.assign([tp])
    reader.seek(tp, start)
    count = 0
    for _ in range(1000):  # a bounded number of fetches: a drained system has few records left
        batch = await reader.getmany(tp, timeout_ms=1000)
        count += sum(1 for record in batch.get(tp, []) if record.offset < end)
        if await reader.position(tp) >= end:
            break
    return count
