"""Consumer lag per group and partition, as Kafka sees it: the end offset of each partition minus the
group's committed offset (`ticketflow_consumer_lag`), for every group this process consumes with
(`subscriptions.SUBSCRIBED`). Committed, not fetched: a record counts until its effect is stored, which is
when the patterns commit (the SLA service commits after each checkpoint, for this).

Measured from outside the consumers (an admin client and a group-less consumer), so a consumer that is
stuck still shows its lag growing; a partition the group never committed counts from its first offset."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ticketflow.messaging.metrics import CONSUMER_LAG
from ticketflow.messaging.security import PLAINTEXT, KafkaSecurity
from ticketflow.messaging.subscriptions import SUBSCRIBED, sleep_or_stop

log = logging.getLogger(__name__)


class ConsumerLag:
    def __init__(
        self,
        bootstrap: str,
        groups: Callable[[], Mapping[str, set[str]]] = lambda: SUBSCRIBED,
        *,
        security: KafkaSecurity = PLAINTEXT,
        every_s: float = 15.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.groups = groups
        self.every_s = every_s

    async def run(self, stop: asyncio.Event) -> None:
        """Measure every `every_s` until stopped (a background task of the runtime)."""
        options = self.security.client_options()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="ticketflow-lag", **options)
        ends = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, client_id="ticketflow-lag", **options
        )
        await admin.start()
        try:
            await ends.start()
            try:
                while not stop.is_set():
                    await self.measure(admin, ends)
                    await sleep_or_stop(stop, self.every_s)
            finally:
                await ends.stop()
        finally:
            await admin.close()

    async def measure(self, admin: AIOKafkaAdminClient, ends: AIOKafkaConsumer) -> dict[tuple[str, str, int], int]:
        """Set the gauges; returns {(group, topic, partition): lag}."""
        groups = {group: set(topics) for group, topics in self.groups().items()}
        described = await admin.describe_topics(sorted(set().union(*groups.values()))) if groups else []
        counts = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
        found: dict[tuple[str, str, int], int] = {}
        for group, topics in groups.items():
            partitions = [TopicPartition(topic, p) for topic in sorted(topics) for p in range(counts.get(topic, 0))]
            if not partitions:
                continue
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            last = await ends.end_offsets(partitions)
            first = await ends.beginning_offsets(partitions)
            for tp in partitions:
                meta = committed.get(tp)
                position = meta.offset if meta is not None and meta.offset >= 0 else first[tp]
                lag = max(0, last[tp] - position)
                found[(group, tp.topic, tp.partition)] = lag
                CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(lag)
        return found
