"""The relay as the projector runs it, in a process of its own (benchmarks: how fast and how far behind
the store; failure tests: killed with SIGKILL), and a consumer process that notes when each event
became visible on Kafka (to a `read_committed` consumer, as the services read).

`RelayProcess` reports its progress (events published in committed transactions, and when the count
last moved) through shared memory; `ArrivalLog` writes (event id, arrival time) pairs to a file that
`store_to_kafka_lags` joins with the events' `recorded_at` in the store."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import astuple
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from ticketflow.eventstore import Checkpoint, EventStore

_spawn = multiprocessing.get_context("spawn")


def make_relay(
    store: EventStore,
    bootstrap: str,
    topic_names: Mapping[str, str],
    name: str,
    start: Checkpoint,
    batch_size: int,
    commit_delay_s: float = 0.0,
) -> Any:
    """The relay under test (the one place a benchmark's A/B swaps relay implementations)."""
    from ticketflow.messaging.relay import Relay

    class SlowCommitRelay(Relay):
        """Waits `commit_delay_s` between a batch's records being acknowledged and its commit: a wide
        window in which the batch is on the broker but not committed (failure tests kill it there)."""

        async def _commit(self, producer: Any, prepared: Any) -> None:
            await asyncio.gather(*prepared.sent)
            await asyncio.sleep(commit_delay_s)
            await super()._commit(producer, prepared)

    kind = SlowCommitRelay if commit_delay_s else Relay
    return kind(store, bootstrap, name=name, topic_names=topic_names, start=start, batch_size=batch_size,
                retry_after_s=0.5)  # fmt: skip


def _relay_main(
    dsn: str, bootstrap: str, topic_names: dict[str, str], name: str, start: tuple[int, int], batch_size: int,
    commit_delay_s: float, progress: Any, stop: Any,
) -> None:  # fmt: skip
    async def run() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        start_at = Checkpoint(*start)
        relay = make_relay(EventStore(pool), bootstrap, topic_names, name, start_at, batch_size, commit_delay_s)
        stopping = asyncio.Event()
        task = asyncio.create_task(relay.run(stopping))
        reported = 0
        while not stop.is_set() and not task.done():
            if relay.published != reported:
                reported = relay.published
                progress[1] = time.time()
                progress[0] = reported
            await asyncio.sleep(0.002)
        stopping.set()
        await task
        await pool.close()

    asyncio.run(run())


class RelayProcess:
    """`make_relay` in a spawned process. `start`: where it begins when Kafka holds no checkpoint for
    `name` (benchmarks: the store's head when the measured phase begins). `commit_delay_s`: see
    `make_relay` (failure tests)."""

    def __init__(
        self,
        dsn: str,
        bootstrap: str,
        topic_names: Mapping[str, str],
        *,
        start: Checkpoint | None = None,
        name: str = "",
        batch_size: int = 5000,
        commit_delay_s: float = 0.0,
    ) -> None:
        self.name = name or f"bench-relay-{uuid.uuid4().hex[:8]}"
        self._progress = _spawn.Array("d", 2)
        self._stop = _spawn.Event()
        self._process = _spawn.Process(
            target=_relay_main,
            args=(dsn, bootstrap, dict(topic_names), self.name, astuple(start or Checkpoint()), batch_size,
                  commit_delay_s, self._progress, self._stop),
        )  # fmt: skip

    def start(self) -> RelayProcess:
        self._process.start()
        return self

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    @property
    def published(self) -> int:
        """Events in transactions this process committed (0 again after a restart: a new process)."""
        return int(self._progress[0])

    @property
    def published_at(self) -> float:
        """Wall-clock time the published count last moved."""
        return float(self._progress[1])

    async def wait_published(self, count: int, timeout_s: float = 120) -> float:
        """Until `count` events are published; returns when the last of them was (wall clock)."""
        async with asyncio.timeout(timeout_s):
            while self.published < count:
                if not self._process.is_alive():
                    raise RuntimeError(f"the relay process exited ({self._process.exitcode})")
                await asyncio.sleep(0.002)
        return self.published_at

    def kill(self) -> None:
        """SIGKILL: no cleanup, its open Kafka transaction and database session just end."""
        os.kill(self.pid, signal.SIGKILL)
        self._process.join(10)

    def stop(self, timeout_s: float = 30) -> None:
        self._stop.set()
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


def _arrivals_main(bootstrap: str, topics: list[str], out: str, ready: Any, stop: Any, count: Any) -> None:
    from aiokafka import AIOKafkaConsumer

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            *topics, bootstrap_servers=bootstrap, group_id=f"arrivals-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest", isolation_level="read_committed",
        )  # fmt: skip
        await consumer.start()
        ids: list[bytes] = []
        times: list[float] = []
        try:
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
            ready.set()
            while not stop.is_set():
                for records in (await consumer.getmany(timeout_ms=50, max_records=10_000)).values():
                    now = time.time()
                    for record in records:
                        ids.append(uuid.UUID(dict(record.headers)["event-id"].decode()).bytes)
                        times.append(now)
                    count.value = len(ids)
        finally:
            await consumer.stop()
        np.savez(out, ids=np.frombuffer(b"".join(ids), dtype=np.uint8), times=np.array(times))

    asyncio.run(run())


class ArrivalLog:
    """A `read_committed` consumer in its own process noting when each event id arrived."""

    def __init__(self, bootstrap: str, topics: Sequence[str], folder: Path) -> None:
        self.path = folder / f"arrivals-{uuid.uuid4().hex[:8]}.npz"
        self._ready, self._stop, self._count = _spawn.Event(), _spawn.Event(), _spawn.Value("q", 0)
        self._process = _spawn.Process(
            target=_arrivals_main, args=(bootstrap, list(topics), str(self.path), self._ready, self._stop, self._count)
        )

    async def start(self) -> ArrivalLog:
        self._process.start()
        await asyncio.to_thread(self._ready.wait, 60)
        return self

    async def wait_count(self, count: int, timeout_s: float = 120) -> None:
        """Until `count` records were read."""
        async with asyncio.timeout(timeout_s):
            while self._count.value < count:  # noqa: ASYNC110 - shared memory, nothing to await
                await asyncio.sleep(0.01)

    def stop(self) -> dict[uuid.UUID, float]:
        """Stop reading; the arrival time of every event id read (the first, if one came twice).
        Again after stopping: nothing."""
        if self._stop.is_set():
            return {}
        self._stop.set()
        self._process.join(60)
        saved = np.load(self.path)
        arrivals: dict[uuid.UUID, float] = {}
        raw = saved["ids"].tobytes()
        for n, at in enumerate(saved["times"].tolist()):
            arrivals.setdefault(uuid.UUID(bytes=raw[16 * n : 16 * n + 16]), at)
        self.path.unlink()
        return arrivals


async def store_to_kafka_lags(pool: asyncpg.Pool, arrivals: Mapping[uuid.UUID, float]) -> np.ndarray[Any, Any]:
    """Per event read: milliseconds from its `recorded_at` (the start of the transaction that stored it)
    to its arrival at a `read_committed` consumer."""
    rows = await pool.fetch(
        "SELECT event_id, extract(epoch FROM recorded_at)::float8 AS at FROM events WHERE event_id = ANY($1::uuid[])",
        list(arrivals),
    )
    return np.array([(arrivals[row["event_id"]] - row["at"]) * 1000 for row in rows])
