"""A full run of the path of one eXpress message, as real processes on FREE ports, with their own
database, topics (a suffix on every name) and consumer groups, so it shares nothing with other runs on
the broker: projector (the relay), intake, preflight and notifications, exporting spans to an OTLP
receiver on loopback (tests/support/otlp.py) and delivering to a fake eXpress platform.

- tracing: the spans of the message, from intake's webhook to notifications' call to the platform, are
  one trace across the four processes, and the platform received that trace's `traceparent`; the same
  for a Bitrix24 portal's message (installed through intake's verified path, answered with
  `imbot.message.add`) and for a message on the generic API (`POST /v1/messages`), answered through the
  tenant's signed webhook;
- logs: every line of every process is a JSON object naming its service and level; lines written while a
  record was handled carry its trace, ticket and event ids; no configured secret appears anywhere
  (also not in `migrate`'s output when it cannot connect);
- metrics: each process serves Prometheus text on its operations port, with what this run did."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fakes.bitrix24 import FakeBitrix24
from fakes.botx import FakeBotX
from fakes.smtp import FakeSmtp
from fakes.webhook import FakeWebhookReceiver
from intake_payloads import b24_auth, b24_message
from support.bitrix24 import BOX_CLIENT_ID, BOX_SECRET_ENV, b24_environment, desks_for
from support.demo import ROOT, demo_secrets, load_demo
from support.eventstore import migrated_pool
from support.infra import create_database, drop_database, unique_name
from support.metrics import sample_value
from support.otlp import OtlpReceiver, ReceivedSpan

from ticketflow.contracts.topics import AGENT_EVENTS, CHAT_INBOUND, CHAT_REPLIES, TICKET_COMMANDS, TICKET_EVENTS

pytestmark = [pytest.mark.e2e, pytest.mark.pg, pytest.mark.kafka]
SERVICES = ("projector", "intake", "preflight", "notifications")
REGISTERED = "зарегистрировано под номером"  # "registered under TF-…" (ticket_opened, ru)
CONFIG = ROOT / "services/notifications/src/ticketflow/notifications/config/local.toml"
B24_APP_TOKEN, B24_AUTHOR_TOKEN = "telemetry-application-token", "telemetry-author-access-token"
GENERIC_TENANT = "telemetry-helpdesk"
GENERIC_KEY_ENV, WEBHOOK_SECRET_ENV = "TICKETFLOW_TELEMETRY_GENERIC_KEY", "TICKETFLOW_TELEMETRY_WEBHOOK_SECRET"
SPAN_SERVER, SPAN_CLIENT, SPAN_CONSUMER = 2, 3, 5  # opentelemetry.proto.trace.v1.Span.SpanKind


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int
    ops_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.ops_port}"


@dataclass
class System:
    processes: dict[str, Process]
    receiver: OtlpReceiver
    botx: FakeBotX
    webhook: FakeWebhookReceiver  # the generic tenant's platform
    bitrix24: FakeBitrix24  # the box desk's portal
    secrets: dict[str, str]
    dsn: str
    suffix: str  # on every topic name of this run


async def _database(pg_dsn: str) -> tuple[str, str]:
    name = unique_name("tf_telemetry")
    dsn = await create_database(pg_dsn, name)
    pool = await migrated_pool(dsn)
    await pool.close()
    return name, dsn


def _desks(bitrix24: FakeBitrix24, directory: Path) -> Path:
    """The packaged desks (every service reads them), the box desk's portal at the fake's address and the
    express desk also serving a generic-API tenant."""
    desks_for(bitrix24, directory)
    express = directory / "express.toml"
    express.write_text(
        express.read_text()
        + f'\n[[platforms.generic]]\ntenant_id = "{GENERIC_TENANT}"\napi_key_env = "{GENERIC_KEY_ENV}"\n'
        + 'default_track = "client"\n'
    )
    return directory


def _environment(
    name: str, port: int, ops_port: int, base: dict[str, str], suffix: str, config: Path
) -> dict[str, str]:
    prefix = f"TICKETFLOW_{name.upper()}_"
    group = f"telemetry-{suffix.lstrip('.')}"
    own = {"PORT": str(port), "OPS_PORT": str(ops_port)}
    if name == "projector":
        own["RELAY_TOPICS"] = json.dumps({topic: topic + suffix for topic in (TICKET_EVENTS, AGENT_EVENTS)})
    elif name == "intake":
        own |= {
            "TOPIC": CHAT_INBOUND + suffix, "GROUP": f"{group}-intake", "COMMANDS_TOPIC": TICKET_COMMANDS + suffix,
            "COMMANDS_GROUP": f"{group}-intake-commands", "REPLIES_TOPIC": CHAT_REPLIES + suffix,
            "B24_EVENTS_URL": f"http://127.0.0.1:{port}/bitrix24/events",
        }  # fmt: skip
    elif name == "preflight":
        own |= {"TOPIC": TICKET_EVENTS + suffix, "GROUP": f"{group}-preflight"}
    elif name == "notifications":
        own |= {
            "TOPIC": TICKET_EVENTS + suffix, "GROUP": f"{group}-notifications", "CONFIG": str(config),
            "REPLIES_TOPIC": CHAT_REPLIES + suffix, "REPLIES_GROUP": f"{group}-notifications-replies",
        }  # fmt: skip
    return {**base, **{prefix + key: value for key, value in own.items()}}


async def _wait_ready(process: Process) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(360):
            if process.popen.poll() is not None:
                pytest.fail(
                    f"{process.name} exited with {process.popen.returncode}:\n{process.log.read_text()[-4000:]}"
                )
            try:
                if (await client.get(f"{process.url}/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    pytest.fail(f"{process.name} never became ready:\n{process.log.read_text()[-4000:]}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def system(pg_dsn: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    logs = tmp_path_factory.mktemp("telemetry")
    db_name, dsn = await _database(pg_dsn)
    suffix = f".telemetry-{uuid.uuid4().hex[:8]}"
    topics = [t + suffix for t in (TICKET_EVENTS, AGENT_EVENTS, CHAT_INBOUND, CHAT_REPLIES, TICKET_COMMANDS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, 3, 1) for t in topics] + [NewTopic(f"{t}.dlq", 1, 1) for t in topics])
    secrets = demo_secrets() | {
        GENERIC_KEY_ENV: f"generic-key-{uuid.uuid4().hex}", WEBHOOK_SECRET_ENV: f"webhook-secret-{uuid.uuid4().hex}",
    }  # fmt: skip
    demo = load_demo()
    acme_bot = uuid.UUID("3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69")
    bots = {
        demo.EXPRESS_BOT: secrets["TICKETFLOW_EXPRESS_CLIENT_BOT_SECRET"],
        acme_bot: secrets["TICKETFLOW_EXPRESS_ACME_BOT_SECRET"],
    }
    receiver, botx, smtp = OtlpReceiver(), FakeBotX(bots), FakeSmtp()
    webhook = FakeWebhookReceiver(secret=secrets[WEBHOOK_SECRET_ENV])
    bitrix24 = FakeBitrix24(client_id=BOX_CLIENT_ID, client_secret=secrets[BOX_SECRET_ENV],
                            user_tokens={B24_AUTHOR_TOKEN: True})  # fmt: skip
    processes: dict[str, Process] = {}
    try:
        async with receiver.running(), botx.running(), smtp.running(), webhook.running(), bitrix24.running():
            config = logs / "notifications.toml"
            text = CONFIG.read_text().replace("http://127.0.0.1:8765", botx.base_url)
            text += f'\n[[webhooks]]\nname = "{GENERIC_TENANT}"\nurl = "{webhook.url}"\n'
            text += f'secret_env = "{WEBHOOK_SECRET_ENV}"\n'
            config.write_text(text.replace("port = 8025", f"port = {smtp.port}"))
            base = {
                **os.environ, **secrets,
                "TICKETFLOW_PG_DSN": dsn, "TICKETFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
                "TICKETFLOW_ENSURE_TOPICS": "0", "TICKETFLOW_LOG_LEVEL": "DEBUG", "TICKETFLOW_LOG_FORMAT": "json",
                "TICKETFLOW_DESK_CONFIG_DIR": str(_desks(bitrix24, logs / "desks")),
                **b24_environment(bitrix24, BOX_SECRET_ENV),
                "TICKETFLOW_METRICS_INTERVAL_SECONDS": "1",
                "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url,
                "OTEL_TRACES_SAMPLER": "parentbased_always_on", "OTEL_BSP_SCHEDULE_DELAY": "200",
            }  # fmt: skip
            for name in SERVICES:
                port, ops_port = free_port(), free_port()
                log = logs / f"{name}.log"
                popen = subprocess.Popen(  # noqa: ASYNC220 - long-lived children, stopped below
                    [sys.executable, "-m", f"ticketflow.{name}"],
                    env=_environment(name, port, ops_port, base, suffix, config),
                    cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                )  # fmt: skip
                processes[name] = Process(name, popen, log, port, ops_port)
            for process in processes.values():
                await _wait_ready(process)
            yield System(processes, receiver, botx, webhook, bitrix24, secrets, dsn, suffix)
            for process in processes.values():  # stopped here: the shutdown's lines are in the logs too
                process.popen.send_signal(signal.SIGTERM)
            for process in processes.values():
                await asyncio.to_thread(process.popen.wait, 30)
    finally:
        for process in processes.values():
            if process.popen.poll() is None:
                process.popen.kill()
        await admin.delete_topics(topics + [f"{t}.dlq" for t in topics])
        await admin.close()
        server = await asyncpg.connect(pg_dsn)
        try:
            await drop_database(server, db_name)
        finally:
            await server.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def delivered(system: System) -> str:
    """One eXpress message posted to intake's webhook; returns the chat id once the bot answered in it."""
    demo = load_demo()
    chat = uuid.uuid4()
    with mock.patch.dict(os.environ, system.secrets):  # the demo signs with the bot's secret from the environment
        command, headers = demo.express_command("Не приходят push-уведомления на Android после обновления", chat)
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(f"{system.processes['intake'].url}/command", json=command, headers=headers)
    assert answer.status_code == 202, answer.text
    for _ in range(240):
        if any(n.chat_id == chat and REGISTERED in n.body for n in system.botx.received):
            return str(chat)
        await asyncio.sleep(0.5)
    logs = "\n".join(p.log.read_text()[-2000:] for p in system.processes.values())
    pytest.fail(f"the bot never answered in the chat; the logs end with:\n{logs}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def delivered_generic(system: System) -> str:
    """One message posted to the generic API; returns its conversation id once the tenant's webhook got the
    bot's answer."""
    conversation = f"conversation-{uuid.uuid4().hex}"
    message = {
        "tenant_id": GENERIC_TENANT, "conversation_id": conversation, "message_id": uuid.uuid4().hex,
        "sender": {"user_id": "user-1", "display_name": "Ольга", "roles": ["end_user"]},
        "text": "Не открывается личный кабинет после смены пароля",
    }  # fmt: skip
    headers = {"Authorization": f"Bearer {system.secrets[GENERIC_KEY_ENV]}"}
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(f"{system.processes['intake'].url}/v1/messages", json=message, headers=headers)
    assert answer.status_code == 202, answer.text
    for _ in range(240):
        if any(REGISTERED in str(h.payload.get("body")) and h.payload.get("address") for h in system.webhook.received):
            return conversation
        await asyncio.sleep(0.5)
    logs = "\n".join(p.log.read_text()[-2000:] for p in system.processes.values())
    pytest.fail(f"the tenant's webhook never got the answer; the logs end with:\n{logs}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def delivered_bitrix24(system: System) -> str:
    """The box portal installed through intake (verified with the OAuth server, bot registered), then one
    message of its administrator to the bot; returns the dialog once the bot answered in it (what preflight
    decides depends on the portal checks, e.g. whether the vendor's update feed resolves here)."""
    portal, intake = system.bitrix24, system.processes["intake"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient(timeout=10) as client:
        installed = await client.post(f"{intake.url}/bitrix24/events", content=portal.install_form(B24_APP_TOKEN),
                                      headers=form)  # fmt: skip
        assert installed.status_code == 200, installed.text
        dialog = f"{uuid.uuid4().int % 10**6}"
        author = b24_auth(portal.member_id, B24_APP_TOKEN, user_id=dialog, domain=portal.domain,
                          access_token=B24_AUTHOR_TOKEN, expires=str(int(time.time()) + 3600))  # fmt: skip
        message = b24_message("Не открывается /crm/ после обновления", dialog_id=dialog, user_id=dialog,
                              message_id=str(uuid.uuid4().int % 10**9), member_id=portal.member_id,
                              token=B24_APP_TOKEN, bot_id=str(installed.json()["bot_id"]), auth=author)  # fmt: skip
        answer = await client.post(f"{intake.url}/bitrix24/events", content=message, headers=form)
    assert answer.status_code == 200, answer.text
    for _ in range(240):
        if any(m.dialog_id == dialog for m in portal.received):
            return dialog
        await asyncio.sleep(0.5)
    logs = "\n".join(p.log.read_text()[-2000:] for p in system.processes.values())
    pytest.fail(f"the bot never answered in the Bitrix24 dialog; the logs end with:\n{logs}")


def _services(spans: list[ReceivedSpan]) -> set[str]:
    return {s.service for s in spans}


async def _assert_one_trace(
    system: System, traceparent: str, route: str, conversation: str, decided: set[str] | None = None
) -> None:
    """The trace of `traceparent` (the header of notifications' call to the platform): it starts at intake's
    `route`, runs through intake's chat.inbound batch, preflight and notifications, every span under another
    of the trace up to that HTTP span, and the ticket's stored events carry it (opened, then one of
    `decided`: passed unless said otherwise)."""
    decided = decided or {"PreflightPassed"}
    trace_id, call_span_id = traceparent.split("-")[1:3]

    def complete(spans: list[ReceivedSpan]) -> bool:
        """Every process's spans arrived, and each span's parent too (a parent ends, and is exported, after
        the events it caused may already have been handled elsewhere)."""
        mine = [s for s in spans if s.trace_id == trace_id]
        ids = {s.span_id for s in mine}
        return (
            {f"ticketflow-{n}" for n in ("intake", "preflight", "notifications")} <= _services(mine)
            and call_span_id in ids
            and all(not s.parent_span_id or s.parent_span_id in ids for s in mine)
        )

    assert await system.receiver.wait_for(complete, timeout_s=60), sorted(
        (s.service, s.name, s.trace_id) for s in system.receiver.spans
    )
    spans = [s for s in system.receiver.spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in spans}
    [webhook] = [s for s in spans if s.kind == SPAN_SERVER and s.attributes.get("http.route") == route]
    assert webhook.service == "ticketflow-intake" and webhook.parent_span_id == ""  # the trace starts here
    [inbound] = [s for s in spans if s.name == f"process {CHAT_INBOUND}{system.suffix}"]
    assert inbound.parent_span_id == webhook.span_id  # intake's chat.inbound batch, under its webhook
    checked = [s for s in spans if s.service == "ticketflow-preflight" and s.kind == SPAN_CONSUMER]
    assert checked and all(s.parent_span_id in by_id for s in checked)  # continued from the event's metadata
    call = by_id[call_span_id]
    assert call.kind == SPAN_CLIENT and call.service == "ticketflow-notifications"
    consumer = by_id[call.parent_span_id]  # the answer was sent while notifications handled one record
    assert consumer.kind == SPAN_CONSUMER and consumer.service == "ticketflow-notifications"
    assert consumer.parent_span_id in by_id  # ...whose traceparent came from preflight's span, via the relay
    assert by_id[consumer.parent_span_id].service == "ticketflow-preflight"
    stored = await asyncpg.connect(system.dsn)  # the trace is stored with the ticket's events
    try:
        rows = await stored.fetch(
            "SELECT event_type, metadata->>'traceparent' AS traceparent FROM events WHERE stream_id = ("
            "SELECT stream_id FROM events WHERE data->'chat'->>'conversation_id' = $1 LIMIT 1)",
            conversation,
        )
    finally:
        await stored.close()
    assert "TicketOpened" in {r["event_type"] for r in rows} and decided & {r["event_type"] for r in rows}
    assert all(r["traceparent"].split("-")[1] == trace_id for r in rows)
    queries = [s for s in spans if s.kind == SPAN_CLIENT and s.attributes.get("db.system") == "postgresql"]
    assert queries  # asyncpg's instrumentation, inside the traced work
    # Every span of the trace hangs under another of the trace, up to the webhook: nothing is detached.
    for span in spans:
        hops = 0
        while span.parent_span_id:
            span, hops = by_id[span.parent_span_id], hops + 1
            assert hops < 50
        assert span is webhook


async def test_one_botx_message_is_one_trace_from_the_webhook_to_the_reply_in_the_chat(
    system: System, delivered: str
) -> None:
    [reply] = [n for n in system.botx.received if str(n.chat_id) == delivered and REGISTERED in n.body]
    assert reply.traceparent is not None, "notifications' call to eXpress carried no trace context"
    trace_id = reply.traceparent.split("-")[1]
    # The self-help hints (intake's reply, through chat.replies) belong to the same trace.
    for _ in range(60):
        hints = [n for n in system.botx.received if str(n.chat_id) == delivered and n is not reply]
        if hints:
            break
        await asyncio.sleep(0.5)
    assert hints and all(n.traceparent and n.traceparent.split("-")[1] == trace_id for n in hints)
    await _assert_one_trace(system, reply.traceparent, "/command", delivered)


async def test_one_bitrix24_message_is_one_trace_from_the_portals_event_to_the_bots_answer(
    system: System, delivered_bitrix24: str
) -> None:
    answer = next(m for m in system.bitrix24.received if m.dialog_id == delivered_bitrix24)
    assert answer.traceparent is not None, "notifications' imbot.message.add carried no trace context"
    preflight_outcomes = {"PreflightPassed", "PreflightFailed", "TicketRefused"}  # the portal checks decide
    await _assert_one_trace(system, answer.traceparent, "/bitrix24/events", delivered_bitrix24, preflight_outcomes)


async def test_one_generic_api_message_is_one_trace_from_the_api_to_the_tenants_webhook(
    system: System, delivered_generic: str
) -> None:
    [answer] = [h for h in system.webhook.received if REGISTERED in str(h.payload.get("body"))]
    assert answer.traceparent is not None, "notifications' webhook call carried no trace context"
    await _assert_one_trace(system, answer.traceparent, "/v1/messages", delivered_generic)


async def test_every_process_serves_its_metrics_on_the_operations_port(system: System, delivered: str) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        texts = {name: (await client.get(f"{p.ops_url}/metrics")).text for name, p in system.processes.items()}
        for name, process in system.processes.items():
            assert (await client.get(f"{process.ops_url}/health/ready")).status_code == 200, name
            assert (await client.get(f"{process.url}/metrics")).status_code == 404, name  # not on the public port
        for _ in range(30):  # measured every second in this run
            if "ticketflow_consumer_lag{" in texts["notifications"]:
                break
            await asyncio.sleep(1)
            texts["notifications"] = (await client.get(f"{system.processes['notifications'].ops_url}/metrics")).text
    intake, notifications = texts["intake"], texts["notifications"]
    assert sample_value(intake, "ticketflow_http_requests_total", route="/command", status="202") >= 1
    assert sample_value(intake, "ticketflow_intake_accepted_total", platform="express") >= 1
    assert sample_value(intake, "ticketflow_records_consumed_total", consumer=f"{CHAT_INBOUND}{system.suffix}") >= 1
    assert sample_value(texts["projector"], "ticketflow_records_produced_total") >= 1  # the relay
    assert "ticketflow_relay_backlog " in texts["projector"] and "ticketflow_relay_lag_seconds " in texts["projector"]
    assert sample_value(texts["preflight"], "ticketflow_handler_seconds_count", consumer="preflight") >= 1
    assert sample_value(notifications, "ticketflow_notification_deliveries_total", channel="express",
                        outcome="delivered") >= 1  # fmt: skip
    assert sample_value(notifications, "ticketflow_background_task_up", task="recovery") == 1
    assert "ticketflow_consumer_lag{" in notifications


async def test_logs_are_json_lines_with_ids_and_never_a_secret(system: System, delivered: str) -> None:
    secrets = [value for value in system.secrets.values() if value]
    dsn_credentials = system.dsn.split("://", 1)[1].split("@", 1)[0]  # "user:password"
    ids_seen = False
    for process in system.processes.values():
        text = process.log.read_text()
        for secret in [*secrets, dsn_credentials]:
            assert secret not in text, f"{process.name}'s log shows a secret"
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines, process.name
        for line in lines:
            entry = json.loads(line)  # every line: a JSON object
            assert entry["service"] == process.name and entry["level"] in {"DEBUG", "INFO", "WARNING", "ERROR"}, line
            if entry.get("trace_id") and entry.get("ticket_id") and entry.get("event_id"):
                ids_seen = True
    assert ids_seen, "no line carried the trace, ticket and event ids of the record being handled"


async def test_migrate_never_prints_the_database_password() -> None:
    unreachable = f"postgresql://ticketflow:not-the-real-{uuid.uuid4().hex}@127.0.0.1:1/ticketflow"
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "ticketflow.eventstore.migrate"],
        env={**os.environ, "TICKETFLOW_PG_DSN": unreachable}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 1 and "cannot connect" in output
    assert "not-the-real-" not in output and "postgresql://ticketflow:***@127.0.0.1:1/ticketflow" in output
