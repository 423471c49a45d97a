"""The process: its settings (every variable keeps the name it had), start-up (`main.build(settings).start`:
both subscriptions, the recovery loop, the hooks that close what it opened, the collector tuned), and the
whole service under the runtime's lifespan, in this process, against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import msgspec
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from support.bitrix24 import BOX_SECRET_ENV, b24_environment, desks_for, installed_portal
from support.polling import eventually
from support.records import RecordingProducer

from ticketflow.contracts import notification_events as ne
from ticketflow.contracts.values import ChatRef
from ticketflow.eventstore import EventStore
from ticketflow.notifications.main import build
from ticketflow.notifications.settings import NotificationsSettings
from ticketflow.runtime.gc_tuning import BATCH_CONSUMER_THRESHOLDS
from ticketflow.runtime.service import Runtime, asgi_app
from ticketflow.runtime.settings import SettingsError, load_settings

from .letters import dead_letters_on
from .test_replies_kafka import reply
from .test_service import PORTAL, SECRETS, outcomes, running_platforms

TODAY = {  # the variables the service read before it had a settings object, with the names they had
    "TICKETFLOW_NOTIFICATIONS_CONFIG": "/etc/ticketflow/notifications.toml",
    "TICKETFLOW_DESK_CONFIG_DIR": "/etc/ticketflow/desks",
    "TICKETFLOW_NOTIFICATIONS_PORT": "9005",
    "TICKETFLOW_NOTIFICATIONS_PARALLEL": "16",
    "TICKETFLOW_NOTIFICATIONS_POOL": "12",
    "TICKETFLOW_NOTIFICATIONS_RECOVER_SECONDS": "2",
    "TICKETFLOW_NOTIFICATIONS_AUTO_REDRIVE_SECONDS": "0",
    "TICKETFLOW_NOTIFICATIONS_GC_THRESHOLDS": "700,10,10",
    "TICKETFLOW_NOTIFICATIONS_TOPIC": "bench-events",
    "TICKETFLOW_NOTIFICATIONS_GROUP": "bench",
    "TICKETFLOW_NOTIFICATIONS_REPLIES_TOPIC": "bench-replies",
    "TICKETFLOW_NOTIFICATIONS_REPLIES_GROUP": "bench-replies-group",
}


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_variable_keeps_the_name_it_had(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TODAY.items():
        monkeypatch.setenv(name, value)
    s = load_settings(NotificationsSettings)
    assert (s.config_file, s.desk_directory) == (
        Path(TODAY["TICKETFLOW_NOTIFICATIONS_CONFIG"]),
        Path(TODAY["TICKETFLOW_DESK_CONFIG_DIR"]),
    )
    assert (s.port, s.parallel, s.pool, s.recover_seconds, s.auto_redrive_seconds) == (9005, 16, 12, 2.0, 0.0)
    assert s.gc_thresholds == (700, 10, 10)
    assert (s.topic, s.group, s.replies_topic, s.replies_group) == (
        "bench-events", "bench", "bench-replies", "bench-replies-group",
    )  # fmt: skip


def test_unset_or_empty_variables_mean_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TODAY:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TICKETFLOW_NOTIFICATIONS_CONFIG", "")  # as `VAR= python -m ...` leaves it: the packaged file
    s = load_settings(NotificationsSettings)
    assert (s.config_file, s.desk_directory, s.port, s.parallel, s.pool) == (None, None, 8005, 64, 24)
    assert (s.recover_seconds, s.auto_redrive_seconds, s.gc_thresholds) == (60.0, 300.0, BATCH_CONSUMER_THRESHOLDS)
    assert (s.topic, s.group, s.replies_topic, s.replies_group) == (
        "ticket.events", "notifications", "chat.replies", "notifications.replies",
    )  # fmt: skip


def test_a_send_deadline_not_shorter_than_the_lease_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A send must end before its claim can be taken over (issue 16): the defaults hold, a deadline as
    long as the lease is refused with both variables named."""
    s = load_settings(NotificationsSettings)
    assert (s.send_deadline_seconds, s.lease_seconds, s.per_destination) == (20.0, 120.0, 64)
    monkeypatch.setenv("TICKETFLOW_NOTIFICATIONS_SEND_DEADLINE_SECONDS", "120")
    with pytest.raises(SettingsError, match=r"SEND_DEADLINE_SECONDS must be shorter than.*LEASE_SECONDS"):
        load_settings(NotificationsSettings)


def test_a_bad_setting_stops_the_process_naming_each_variable() -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TICKETFLOW_NOTIFICATIONS_PARALLEL": "lots",
           "TICKETFLOW_NOTIFICATIONS_GC_THRESHOLDS": "50000,often"}  # fmt: skip
    run = subprocess.run([sys.executable, "-m", "ticketflow.notifications"], env=env, capture_output=True, timeout=60)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.decode().splitlines()
    assert lines[0] == "notifications: refusing to start:"
    assert any(line.startswith("notifications: TICKETFLOW_NOTIFICATIONS_PARALLEL: ") for line in lines), lines
    assert any(line.startswith("notifications: TICKETFLOW_NOTIFICATIONS_GC_THRESHOLDS: ") for line in lines), lines


@pytest.mark.pg
@pytest.mark.parametrize(
    ("configured", "expected"),
    [(None, BATCH_CONSUMER_THRESHOLDS), ("700,10,10", (700, 10, 10))],  # the override restores CPython's
)
async def test_start_up_subscribes_schedules_recovery_and_leaves_the_collector_tuned_and_the_heap_frozen(
    pool: asyncpg.Pool,
    pg_database: str,
    monkeypatch: pytest.MonkeyPatch,
    restored_gc: None,
    configured: str | None,
    expected: tuple[int, ...],
) -> None:
    if configured is None:
        monkeypatch.delenv("TICKETFLOW_NOTIFICATIONS_GC_THRESHOLDS", raising=False)
    else:
        monkeypatch.setenv("TICKETFLOW_NOTIFICATIONS_GC_THRESHOLDS", configured)
    settings = load_settings(NotificationsSettings, pg_dsn=pg_database, config="", topic="ticket.events",
                             replies_topic="chat.replies")  # fmt: skip
    rt = Runtime(settings, pool, KafkaBroker(settings.kafka_bootstrap), cast(AIOKafkaProducer, RecordingProducer()))
    await build(settings).start(rt)
    try:
        assert gc.get_threshold() == expected and gc.get_freeze_count() > 0
        assert list(rt.tasks) == ["ledger liveness", "recovery"]
        assert set(rt.waits) == {"ticket.events", "chat.replies"} and len(rt.broker.subscribers) == 2
        assert len(rt.closing) == 7  # own pool, Bitrix24 HTTP client, four channels, liveness lock
        registered = await pool.fetchval("SELECT count(*) FROM notification_workers")
        assert registered >= 1  # this worker announced itself (and holds its lock) before any claim
    finally:
        for hook in reversed(rt.closing):
            await hook()


@pytest.mark.pg
@pytest.mark.kafka
async def test_the_service_runs_both_subscriptions_under_the_runtime_and_stops(
    pool: asyncpg.Pool,
    pg_database: str,
    kafka_bootstrap: str,
    kafka_topic_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    restored_gc: None,
) -> None:
    events_topic = await kafka_topic_factory(partitions=2, suffix="ticket-events")
    replies_topic = await kafka_topic_factory(partitions=2, suffix="chat-replies")
    await kafka_topic_factory(partitions=1, name=f"{events_topic}.dlq")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    async with running_platforms() as platforms:
        config = tmp_path / "notifications.toml"
        config.write_text(platforms.config_toml(), encoding="utf-8")
        for name, value in b24_environment(platforms.bitrix, BOX_SECRET_ENV).items():
            monkeypatch.setenv(name, value)
        await installed_portal(platforms.bitrix, pool)  # as intake installs it
        platforms.bitrix.expire_access_tokens()  # an hour has passed: the reply needs a renewed token
        renewed = platforms.bitrix.renewed()
        settings = load_settings(
            NotificationsSettings, pg_dsn=pg_database, kafka_bootstrap=kafka_bootstrap, port=port,
            ensure_topics=False, config=str(config), topic=events_topic, group=f"notifications-{uuid.uuid4()}",
            replies_topic=replies_topic, replies_group=f"notifications-replies-{uuid.uuid4()}",
            desk_config_dir=str(desks_for(platforms.bitrix, tmp_path / "desks")),
        )  # fmt: skip
        server = uvicorn.Server(uvicorn.Config(asgi_app(build(settings)), port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        try:
            ticket_id = uuid.uuid4()
            answer = reply(ChatRef("bitrix24", PORTAL, "chat42"), "Обращение закрыто.", ticket_id=ticket_id)
            await producer.send_and_wait(replies_topic, msgspec.json.encode(answer), key=b"chat42")
            await producer.send_and_wait(events_topic, b"not an envelope", key=b"junk")

            await eventually(lambda: platforms.bitrix.received, "the reply delivered")
            [letter] = await dead_letters_on(kafka_bootstrap, f"{events_topic}.dlq")
            assert (letter.value, letter.reason, letter.consumer) == (
                b"not an envelope",
                "undecodable",
                "notifications",
            )

            async def recorded() -> bool:
                return [type(e) for e in await outcomes(EventStore(pool), ticket_id)] == [ne.NotificationDelivered]

            await eventually(recorded, "NotificationDelivered written after the batch")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                ready = (await client.get("/health/ready")).json()
            assert ready["ready"], ready
            assert ready["checks"][f"consumer {events_topic}"] == ready["checks"][f"consumer {replies_topic}"] == "ok"
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 60)
            await producer.stop()
    assert [(m.dialog_id, m.message.rstrip()) for m in platforms.bitrix.received] == [("chat42", "Обращение закрыто.")]
    assert platforms.bitrix.renewed() == renewed + 1  # renewed once, through the real broker's delivery
    assert gc.get_threshold() == BATCH_CONSUMER_THRESHOLDS
