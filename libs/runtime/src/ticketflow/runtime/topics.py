"""`python -m ticketflow.runtime.topics`: create every declared topic (make topics). Idempotent."""

from __future__ import annotations

import asyncio
import os
import sys

from ticketflow.contracts.topics import TOPICS
from ticketflow.runtime.kafka import ensure_topics


def main() -> int:
    bootstrap = os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    try:
        created = asyncio.run(ensure_topics(bootstrap))
    except Exception as exc:
        print(f"topics: cannot reach Kafka at {bootstrap}: {exc!r}\n  start it with `make infra-up`")
        return 1
    for spec in TOPICS:
        mark = "created" if spec.name in created else "exists "
        print(f"{mark} {spec.name:24} partitions={spec.partitions:<3} {spec.cleanup_policy:8} {spec.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
