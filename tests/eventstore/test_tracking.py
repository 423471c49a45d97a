"""Tracking on the real PostgreSQL: an idempotent consumer's claim commits with its effect, or not at all."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from ticketflow.eventstore.tracking import already_processed, first_time

pytestmark = pytest.mark.pg


async def test_idempotent_consumer_rolls_back_the_claim_with_a_failed_effect(pool: asyncpg.Pool) -> None:
    event_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with first_time(pool, "flaky", event_id) as conn:
            assert conn is not None
            raise RuntimeError("effect failed")
    async with first_time(pool, "flaky", event_id) as conn:
        assert conn is not None  # not claimed: the redelivery gets its chance
    async with first_time(pool, "flaky", event_id) as conn:
        assert conn is None
    assert await already_processed(pool, "flaky", event_id)
    assert not await already_processed(pool, "another consumer", event_id)
