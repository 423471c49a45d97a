"""Infrastructure fixtures: real Kafka and PostgreSQL for tests marked `kafka` / `pg`.

Where they come from (env address, Docker, or deploy/scripts/infra-up.sh) is decided in
tests/support/infra.py. A missing service fails the test with what to do about it; it is never skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient
from support.bitrix24 import close_opened
from support.eventstore import migrated_pool
from support.infra import (
    InfraSelector,
    InfraUnavailableError,
    KafkaTopicFactory,
    drop_database,
    dsn_with_database,
    unique_name,
)

# Services a test starts (in process or as processes, which inherit this) read no operators' topic unless
# the test gives them one of their own: the shared broker's ops.commands is for the running system.
os.environ.setdefault("TICKETFLOW_OPS_COMMANDS_TOPIC", "")


@pytest.fixture(scope="session")
def infra_selector() -> Iterator[InfraSelector]:
    selector = InfraSelector()
    yield selector
    selector.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(infra_selector: InfraSelector) -> str:
    """Bootstrap servers of a Kafka broker that answers (e.g. "127.0.0.1:9092")."""
    try:
        return str(infra_selector.kafka_bootstrap())  # str(): mypy does not follow tests/support
    except InfraUnavailableError as error:
        problem = str(error)
    pytest.fail(f"this test needs a real Kafka broker: {problem}", pytrace=False)


@pytest.fixture(scope="session")
def pg_dsn(infra_selector: InfraSelector) -> str:
    """DSN of the `ticketflow` database on a PostgreSQL server that answers."""
    try:
        return str(infra_selector.pg_dsn())
    except InfraUnavailableError as error:
        problem = str(error)
    pytest.fail(f"this test needs a real PostgreSQL server: {problem}", pytrace=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kafka_admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    yield admin
    await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def kafka_topic_factory(
    kafka_admin: AIOKafkaAdminClient, request: pytest.FixtureRequest
) -> AsyncIterator[KafkaTopicFactory]:
    """`name = await kafka_topic_factory(partitions=4)`: a fresh topic, deleted after the test."""
    factory = KafkaTopicFactory(kafka_admin, prefix=f"test-{request.node.name}")
    yield factory
    await factory.delete_all()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pg_database(pg_dsn: str) -> AsyncIterator[str]:
    """DSN of a fresh, empty database (with pg_trgm) for this test module; dropped afterwards."""
    name = unique_name("tf_test")
    server = await asyncpg.connect(pg_dsn)
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        dsn = dsn_with_database(pg_dsn, name)
        database = await asyncpg.connect(dsn)
        try:
            # Trusted extension since PostgreSQL 13: the database owner may create it.
            await database.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        finally:
            await database.close()
        yield dsn
    finally:
        await drop_database(server, name)
        await server.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on this module's fresh database, with every migration applied."""
    p = await migrated_pool(pg_database)
    yield p
    await p.close()


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def _bitrix24_clients_closed() -> AsyncIterator[None]:
    """The ticketflow.bitrix24 HTTP clients a test opened (support.bitrix24), closed after it."""
    yield
    await close_opened()
