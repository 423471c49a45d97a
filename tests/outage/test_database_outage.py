"""Issue 16, item 3: a database outage loses nothing and dead-letters nothing valid; a burst is met with
back-pressure; a notifications process killed mid-burst finishes promptly, sending nothing twice.

The system runs as real processes (projector with the relay, intake, preflight, routing, notifications:
tests/support/system.py) on this run's own topics of the shared broker, against a PRIVATE PostgreSQL
cluster (tests/support/private_postgres.py), which the test stops for real (`pg_ctl stop -m fast`: every
session ends) and starts again on the same port and data directory. The fake BotX (the public eXpress
bot: one destination for all its customers) takes `ANSWER_DELAY` s per message, so a burst fills the
destination's slots. Load (outage_load.py): new conversations posted to intake as BotX sends them, a
second message in every fourth, an agent's reply for every routed ticket, all of it also while the
database is away. Automatic redrive is off: whatever arrives, arrives through the normal path.

Counted at the end (`census`): per conversation exactly one ticket, one preflight outcome, one routing,
the follow-up and the agent's reply applied once, the self-help hint, "registered" and the agent's reply
in the chat once each; 0 dead letters on every dead-letter topic, 0 dead or unknown deliveries in the ledger."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from outage_load import Census, Load, census
from support.eventstore import migrated_pool
from support.private_postgres import PrivatePostgres
from support.system import ChatPlatforms, PrivateTopics, System

pytestmark = [pytest.mark.e2e, pytest.mark.pg, pytest.mark.kafka]
log = logging.getLogger(__name__)
ANSWER_DELAY = 0.2  # seconds the fake BotX takes per message
OUTAGE_S = 35.0  # at least 30 s down (issue 16)
SERVICES = ("projector", "intake", "preflight", "routing", "notifications")
GIVEN_BACK = ("batch not processed", "will be redelivered")  # the patterns' log lines for an outage waited out


@dataclass
class Running:
    cluster: PrivatePostgres
    topics: PrivateTopics
    platforms: ChatPlatforms
    system: System
    bootstrap: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def running(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    logs = tmp_path_factory.mktemp("outage")
    cluster = await asyncio.to_thread(PrivatePostgres.create)
    topics = PrivateTopics.named("outage")
    try:
        pool = await migrated_pool(cluster.dsn)
        await pool.close()
        await topics.create(kafka_bootstrap)
        async with ChatPlatforms.running(logs) as platforms:
            platforms.botx.answer_delay = ANSWER_DELAY
            # Nothing may arrive through the five-minute automatic redrive: it is off. 16 deliveries at once
            # per destination (not 64): at 0.2 s an answer, the burst after the outage fills them on a fast
            # box too, so the back-pressure is met every run, not only when the machine is slow.
            overrides = {"notifications": {"AUTO_REDRIVE_SECONDS": "0", "PER_DESTINATION": "16"}}
            system = System(cluster.dsn, kafka_bootstrap, topics, platforms, logs, overrides)
            try:
                await system.start(*SERVICES)
                yield Running(cluster, topics, platforms, system, kafka_bootstrap)
            finally:
                system.stop()
                log.info("outage test logs: %s", logs)
    finally:
        await topics.delete(kafka_bootstrap)
        await asyncio.to_thread(cluster.destroy)


async def settled(load: Load, platforms: ChatPlatforms, wait_s: float = 240) -> tuple[Census, float]:
    """The census once nothing is lost any more and the chats stopped changing (or after `wait_s`), and
    when the chats last changed (monotonic)."""
    deadline, last, quiet, changed_at = time.monotonic() + wait_s, -1, 0, time.monotonic()
    result = await census(load, platforms)
    while time.monotonic() < deadline:
        received = len(platforms.botx.received)
        if received != last:
            last, quiet, changed_at = received, 0, time.monotonic()
        else:
            quiet += 1
        if not result.lost and quiet >= 3:
            break
        await asyncio.sleep(2)
        result = await census(load, platforms)
    return result, changed_at


@pytest.mark.timeout(900)
async def test_a_database_outage_under_load_loses_nothing_dead_letters_nothing_and_duplicates_nothing(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    system, cluster, platforms = running.system, running.cluster, running.platforms
    load = Load(system["intake"].url, running.topics, running.bootstrap, cluster.dsn)
    stop_agents = asyncio.Event()
    agents = asyncio.create_task(load.agents(stop_agents))
    conversations = asyncio.create_task(load.conversations_at(rate=8.0, seconds=15 + OUTAGE_S + 10))

    await asyncio.sleep(15)
    before = len(load.conversations)
    await asyncio.to_thread(cluster.stop)  # the database is gone: every session ends
    load.outage = True
    down_at = time.monotonic()
    readiness: list[dict[str, tuple[int, dict[str, Any]]]] = []
    for at in (8.0, 25.0):  # while it is down, each service says so
        await asyncio.sleep(max(0.0, down_at + at - time.monotonic()))
        readiness.append(await system.readiness())
    await asyncio.sleep(max(0.0, down_at + OUTAGE_S - time.monotonic()))
    await asyncio.to_thread(cluster.start)  # the same port and data directory
    load.outage = False
    down_s = time.monotonic() - down_at

    await conversations
    stop_agents.set()
    await agents
    result, _ = await settled(load, platforms)
    ready_after = await system.readiness()
    with capsys.disabled():
        print(f"\noutage: {down_s:.0f} s down; {before} conversations before it, {len(load.conversations)} in all;"
              f" sent while down: {dict(load.sent_during_outage)}; commands: {load.commands_sent}")  # fmt: skip
        print(f"census: {result.counts}")
        for name in SERVICES:
            checks = readiness[-1][name][1].get("checks", {})
            waited = {k: v[:60] for k, v in checks.items() if k.startswith("consumer") or k == "postgres"}
            given_back = sum(system[name].log_tail(5_000_000).count(m) for m in GIVEN_BACK)
            print(f"{name}: ready {readiness[-1][name][0]} while down {waited}; batches given back: {given_back}")
        print("busy destination lines:", system["notifications"].log_tail(5_000_000).count("busy ("))

    assert down_s >= 30
    assert load.refused == []  # intake took every webhook, also while the database was away
    assert load.sent_during_outage["webhooks"] > 200 and load.sent_during_outage["commands"] > 0
    for sample in readiness:
        for name in SERVICES:
            status, body = sample[name]
            assert status == 503 and body["checks"]["postgres"] != "ok", (name, sample[name])
    waiting = readiness[-1]["intake"][1]["checks"]
    assert waiting[f"consumer {running.topics.chat_inbound}"].startswith("waiting"), waiting
    assert result.lost == [] and result.duplicates == [] and result.dead_letters == [], result.explain()
    assert result.ledger == {"delivered": sum(2 + c.commanded for c in load.conversations)}, result.explain()
    assert result.unknown_arrived == 0 and result.unknown_missing == []
    assert all(status == 200 for status, _ in ready_after.values()), ready_after
    # The burst after the outage met a busy destination: deliveries waited for its slots (not dead letters).
    assert "busy (" in system["notifications"].log_tail(2_000_000)


@pytest.mark.timeout(900)
async def test_notifications_killed_mid_burst_and_restarted_finishes_promptly_and_sends_nothing_twice(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16 (b): new conversations at 30/s, notifications killed with SIGKILL 4 s in and started again
    at 8 s. Every conversation gets its hint and "registered" once, none is dead-lettered, promptly (the
    automatic redrive is off). The only exception is what the killed process was sending at that moment:
    whether BotX got it, no answer says (BotX has no idempotency handle), so each such delivery is an
    unknown outcome the agent sees, and is never sent again; the census counts how many of those did
    arrive. The killed worker's claims are taken over at once (its liveness lock went with it)."""
    system, platforms = running.system, running.platforms
    load = Load(system["intake"].url, running.topics, running.bootstrap, running.cluster.dsn)
    start = time.monotonic()
    burst = asyncio.create_task(load.conversations_at(rate=30.0, seconds=9))
    await asyncio.sleep(4)
    await asyncio.to_thread(system["notifications"].kill)  # SIGKILL, mid-burst
    killed_at = time.monotonic() - start
    await asyncio.sleep(max(0.0, start + 8 - time.monotonic()))
    await system["notifications"].restart()
    restarted = time.monotonic()
    await burst
    result, last_change = await settled(load, platforms)
    with capsys.disabled():
        print(
            f"\nSIGKILL at {killed_at:.1f} s, ready again at {restarted - start:.1f} s, the chats last changed"
            f" {last_change - restarted:.1f} s after the restart; {len(load.conversations)} conversations"
        )
        print(f"census: {result.counts}")

    assert load.refused == []
    assert result.lost == [] and result.duplicates == [] and result.dead_letters == [], result.explain()
    assert set(result.ledger) <= {"delivered", "unknown"}, result.ledger  # no dead letter, nothing left claimed
    unknown = result.ledger.get("unknown", 0)
    assert unknown == result.unknown_arrived + len(result.unknown_missing)
    assert unknown <= 16  # at most what one destination's slots had in flight when the process died
    assert result.ledger.get("delivered", 0) + unknown == 2 * len(load.conversations)
    assert last_change - restarted < 90  # promptly: not the five-minute redrive (which is off anyway)
