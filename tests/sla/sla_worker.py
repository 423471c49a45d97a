"""The SLA consumer as a separate process (for kill -9 tests): FakeRules, the real broker and store.

python tests/sla/sla_worker.py BOOTSTRAP DSN TOPIC FIRST_RESPONSE_S RESOLUTION_S
Prints a status line every half second; SIGTERM stops it cleanly, SIGKILL is the point of the test."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import asyncpg
from faststream.kafka import KafkaBroker

sys.path.insert(0, str(Path(__file__).parent))
from sla_builders import FakeRules
from sla_consumers import consumer_for

from ticketflow.sla.http import describe


async def main(bootstrap: str, dsn: str, topic: str, first_response: int, resolution: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert pool is not None
    rules = FakeRules(first_response=first_response, next_response=None, resolution=resolution)
    broker = KafkaBroker(bootstrap)
    await broker.start()
    consumer = consumer_for(broker, pool, topic, rules)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(consumer.run(stop))
    while not task.done():
        owner = consumer.current
        print(json.dumps(describe(owner.engine) if owner is not None else {"starting": True}), flush=True)
        await asyncio.wait([task], timeout=0.5)
    await task
    await broker.stop()
    await pool.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    bootstrap, dsn, topic, first, resolution = sys.argv[1:6]
    asyncio.run(main(bootstrap, dsn, topic, int(first), int(resolution)))
