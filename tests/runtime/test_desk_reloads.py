"""ReloadDeskConfig in routing, preflight and notifications as their `main.build` composes them (uvicorn in
this process, the real broker and PostgreSQL, this test's own topics, groups and desk folder): each reads
the desk files again and answers done with counts; a broken desk file is rejected with the problem and the
running configuration stays. (SLA's reload, with its recalculation of running clocks, is
tests/sla/test_sla_reload.py; intake's pause and resume, tests/intake/test_desk_pauses.py.)"""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from support.eventstore import migrated_pool
from support.infra import KafkaTopicFactory
from support.ops import Answers, command, send

from ticketflow.deskconfig import PACKAGED_DESKS
from ticketflow.runtime.service import Service, asgi_app
from ticketflow.runtime.settings import load_settings

pytestmark = [pytest.mark.pg, pytest.mark.kafka]
SECRETS = {"TICKETFLOW_EXPRESS_CLIENT_BOT_SECRET": "s1", "TICKETFLOW_EXPRESS_ACME_BOT_SECRET": "s2",
           "TICKETFLOW_B24_BOX_CLIENT_SECRET": "s4"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def routing(desks: Path, topics: dict[str, str], common: dict[str, Any]) -> tuple[Service, dict[str, int]]:
    from ticketflow.routing.main import build
    from ticketflow.routing.settings import RoutingSettings

    settings = load_settings(RoutingSettings, desk_config_dir=str(desks), group=f"routing-{uuid.uuid4().hex[:8]}",
                             event_topics=(topics["events"], topics["agents"]), commands_topic=topics["commands"],
                             leader_name=f"routing-{uuid.uuid4().hex[:8]}", **common)  # fmt: skip
    return build(settings), {"queues": 7}


def preflight(desks: Path, topics: dict[str, str], common: dict[str, Any]) -> tuple[Service, dict[str, int]]:
    from ticketflow.preflight.main import build
    from ticketflow.preflight.settings import PreflightSettings

    settings = load_settings(PreflightSettings, topic=topics["events"], group=f"pf-{uuid.uuid4().hex[:8]}", **common)
    return build(settings), {"desks": 2}


def notifications(desks: Path, topics: dict[str, str], common: dict[str, Any]) -> tuple[Service, dict[str, int]]:
    from ticketflow.notifications.main import build
    from ticketflow.notifications.settings import NotificationsSettings

    settings = load_settings(NotificationsSettings, desk_config_dir=str(desks), topic=topics["events"],
                             group=f"nt-{uuid.uuid4().hex[:8]}", replies_topic=topics["replies"],
                             replies_group=f"ntr-{uuid.uuid4().hex[:8]}", **common)  # fmt: skip
    return build(settings), {"desks": 2}


@pytest.mark.parametrize("compose", [routing, preflight, notifications], ids=lambda f: f.__name__)
async def test_a_service_reloads_its_desks_and_refuses_a_broken_file(
    compose: Callable[..., tuple[Service, dict[str, int]]], pg_database: str, kafka_bootstrap: str,
    kafka_topic_factory: KafkaTopicFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    desks = tmp_path / "desks"
    shutil.copytree(PACKAGED_DESKS, desks)
    monkeypatch.setenv("TICKETFLOW_DESK_CONFIG_DIR", str(desks))  # preflight reads the desks' own variable
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    pool = await migrated_pool(pg_database)
    topics = {name: await kafka_topic_factory(suffix=name) for name in ("events", "agents", "commands", "replies")}
    ops_commands, ops_events = await kafka_topic_factory(suffix="ops"), await kafka_topic_factory(suffix="answers")
    port = free_port()
    common = {"pg_dsn": pg_database, "kafka_bootstrap": kafka_bootstrap, "port": port, "ensure_topics": False,
              "ops_topic": ops_commands, "ops_events_topic": ops_events}  # fmt: skip
    service, counts = compose(desks, topics, common)
    server = uvicorn.Server(uvicorn.Config(asgi_app(service), port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        async with Answers(kafka_bootstrap, ops_events) as answers:
            await answers.reader_positioned(kafka_bootstrap, ops_commands, service.name)
            await send(kafka_bootstrap, ops_commands, command("reload-1", {"type": "ReloadDeskConfig"}))
            done = await answers.of("reload-1", "done", 60)
            assert (done.service, done.counts) == (service.name, counts)
            box = desks / "bitrix24-box.toml"
            box.write_text(box.read_text(encoding="utf-8").replace("[[sla_policies]]", "[[sla_policy]]", 1))
            await send(kafka_bootstrap, ops_commands, command("reload-2", {"type": "ReloadDeskConfig"}))
            refused = await answers.of("reload-2", "rejected", 60)
            assert refused.reason.startswith("desk configuration refused, the running one stays: ")
            assert "bitrix24-box.toml" in refused.reason
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 60)
        await pool.close()
