"""Fixtures: the intake service as a real process on a fresh database and fresh topics."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from intake_service import RunningIntake, migrate_intake, start_intake, stop_intake


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def intake(pg_database: str, kafka_bootstrap: str, tmp_path_factory: Any) -> AsyncIterator[RunningIntake]:
    await migrate_intake(pg_database)
    service = await start_intake(pg_database, kafka_bootstrap, tmp_path_factory.mktemp("intake"))
    yield service
    await stop_intake(service)
