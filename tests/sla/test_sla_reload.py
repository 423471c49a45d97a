"""ReloadDeskConfig in the SLA service as `main.build` composes it (uvicorn in this process, the real broker
and PostgreSQL, this test's own topics and desk folder): a broken desk file is rejected and the running
configuration stays; a changed policy target is applied to the running clocks by the recalculation rules
(`SlaRecalculated`), as a restart under the new configuration would, and the answer says done."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from sla_builders import opened, passed
from sla_records import Ticket, count_of
from support.eventstore import migrated_pool
from support.ops import Answers, command, send
from support.polling import eventually

from ticketflow.deskconfig import PACKAGED_DESKS
from ticketflow.runtime.service import asgi_app
from ticketflow.runtime.settings import load_settings
from ticketflow.sla.main import build
from ticketflow.sla.settings import SlaSettings

pytestmark = [pytest.mark.pg, pytest.mark.kafka]
NORMAL = 'priority = "normal"\nfirst_response_minutes = 120'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_desk_reload_recalculates_running_clocks_and_a_broken_file_changes_nothing(
    pg_database: str, kafka_bootstrap: str, kafka_topic_factory: Any, tmp_path: Path
) -> None:
    pool = await migrated_pool(pg_database)
    desks = tmp_path / "desks"
    shutil.copytree(PACKAGED_DESKS, desks)
    box = desks / "bitrix24-box.toml"
    assert NORMAL in box.read_text(encoding="utf-8")
    topic = await kafka_topic_factory(partitions=1)
    await kafka_topic_factory(partitions=1, name=f"{topic}.dlq")
    ops_commands, ops_events = await kafka_topic_factory(suffix="ops"), await kafka_topic_factory(suffix="answers")
    t = Ticket()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for event in (opened(t.ticket_id), passed(t.ticket_id)):  # a normal-priority ticket of the box desk
        await producer.send_and_wait(topic, t.envelope(event, int(time.time())), key=t.key)
    await producer.stop()
    port = free_port()
    ops = {"ops_topic": ops_commands, "ops_events_topic": ops_events}
    settings = load_settings(SlaSettings, pg_dsn=pg_database, kafka_bootstrap=kafka_bootstrap, port=port,
                             ensure_topics=False, topic=topic, group_id=f"sla-{topic}", checkpoint_seconds=0.5,
                             desk_config_dir=str(desks), **ops)  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(asgi_app(build(settings)), port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        async with Answers(kafka_bootstrap, ops_events) as answers:
            await eventually(lambda: count_of(pool, "SlaClockStarted", t), "the clocks started", seconds=90)
            await answers.reader_positioned(kafka_bootstrap, ops_commands, "sla")
            box.write_text(box.read_text(encoding="utf-8").replace("[[sla_policies]]", "[[sla_policy]]", 1))
            await send(kafka_bootstrap, ops_commands, command("reload-broken", {"type": "ReloadDeskConfig"}))
            refused = await answers.of("reload-broken", "rejected", seconds=90)
            assert refused.service == "sla" and "desk configuration refused, the running one stays" in refused.reason
            assert "bitrix24-box.toml" in refused.reason

            fixed = box.read_text(encoding="utf-8").replace("[[sla_policy]]", "[[sla_policies]]", 1)
            box.write_text(fixed.replace(NORMAL, 'priority = "normal"\nfirst_response_minutes = 90'))
            await send(kafka_bootstrap, ops_commands, command("reload-90", {"type": "ReloadDeskConfig"}))
            done = await answers.of("reload-90", "done", seconds=90)
            assert done.service == "sla" and done.counts["desks"] == 2
            await eventually(lambda: count_of(pool, "SlaRecalculated", t), "the running clock recalculated", 120)
        row = await pool.fetchrow(
            "SELECT data FROM events WHERE event_type = 'SlaRecalculated' AND stream_id = $1", f"sla-{t.ticket_id}"
        )
        assert row is not None
        recalculated = json.loads(row["data"])
        assert (recalculated["target"], recalculated["target_seconds"], recalculated["rule"]) == (
            "first_response", 90 * 60, "keep_elapsed"
        )  # fmt: skip
        assert await count_of(pool, "SlaRecalculated", t) == 1  # the broken file changed nothing before
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 60)
        await pool.close()
