"""Issue 21, item 1: the journey, end to end. Every service a real process (projector with the relay, queries,
intake, preflight, routing, sla, notifications, dashboard) on the real broker and PostgreSQL
(journey_world.py), the chat platforms local fakes. Three conversations:

- A, eXpress (BotX): a bug report passes preflight, is routed to client-l1 and assigned to the online agent;
  its SLA clocks start on the 24/7 test calendar (first response 1 min); the warning fires at 30 s and the
  breach at 60 s, each mailed to the agent and the lead; the agent replies through the dashboard with her
  own token, then asks whether it helped (the resolution clock pauses); the customer answers in the chat
  (it resumes); the agent resolves.
- B, Bitrix24: the portal installs the app and its administrator writes; preflight's portal checks run for
  real and fail (the portal's address is 127.0.0.1, which production refuses as not public); the
  remediation reaches the portal's dialog and no SLA clock starts.
- C, eXpress: a feature request fails preflight (incomplete: the follow-up questions reach the chat), the
  customer answers them, preflight assesses it again and passes it, and routing sends it to
  product-requests; the agent plans it (the organisation's register shows it, the requester is told).

At each step the query API's JSON (ticket detail, list, SLA board, backlog, agent load, metrics) shows the
state, read by waiting on the position the API reports (one's own action: `min_position` of the event it
caused); what reached each fake platform is checked, and at the end nothing was delivered twice and no
record was dead-lettered."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from fakes.bitrix24 import FakeBitrix24
from journey_world import (
    AGENT,
    AGENT_MAIL,
    AGENT_NAME,
    B24_AUTHOR_TOKEN,
    FIRST_RESPONSE_S,
    LEAD_MAIL,
    RESOLUTION_S,
    SERVICES,
    WARNING,
    Api,
    Chat,
    Journey,
    Token,
    journey_desks,
    notifications_config,
)
from support.agents import agent_event
from support.bitrix24 import BOX_CLIENT_ID, BOX_SECRET_ENV, b24_environment
from support.demo import demo_secrets
from support.eventstore import migrated_pool
from support.infra import create_database, drop_database, unique_name
from support.polling import eventually
from support.system import ChatPlatforms, PrivateTopics, System

from ticketflow.contracts.roster_events import AgentJoinedQueue, AgentStatusChanged

pytestmark = [pytest.mark.e2e, pytest.mark.pg, pytest.mark.kafka]
log = logging.getLogger(__name__)
REGISTERED = "зарегистрировано под номером"  # "registered under TF-…" once preflight took the ticket


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def journey(
    pg_dsn: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Journey]:
    logs = tmp_path_factory.mktemp("journey")
    database = unique_name("tf_journey")
    dsn = await create_database(pg_dsn, database)
    topics = PrivateTopics.named("journey")
    lead, anna = Token.made("lead", "read:*"), Token.made("anna", "agent:express", AGENT)
    portal = FakeBitrix24(client_id=BOX_CLIENT_ID, client_secret=demo_secrets()[BOX_SECRET_ENV],
                          user_tokens={B24_AUTHOR_TOKEN: True})  # fmt: skip
    try:
        pool = await migrated_pool(dsn)
        await pool.close()
        await topics.create(kafka_bootstrap)
        async with ChatPlatforms.running(logs) as platforms, portal.running():
            platforms.config_path.write_text(notifications_config(platforms), encoding="utf-8")
            environment = {
                "TICKETFLOW_DESK_CONFIG_DIR": str(journey_desks(portal, logs / "desks")),
                **b24_environment(portal, BOX_SECRET_ENV),
            }
            overrides = {
                "queries": {"TOKENS": json.dumps([lead.grant, anna.grant])},
                "notifications": {"AUTO_REDRIVE_SECONDS": "0"},
                # Where the portal is told to post the bot's events (imbot.register): intake's public address,
                # as behind an ingress; this test posts them itself, as the portal would.
                "intake": {"B24_EVENTS_URL": "https://intake.journey.example/bitrix24/events"},
            }
            system = System(dsn, kafka_bootstrap, topics, platforms, logs, overrides, environment)
            try:
                await system.start(*SERVICES)
                system.overrides["dashboard"] = {"QUERIES_URL": system["queries"].url}
                await system.start("dashboard")
                await agent_event(dsn, AgentJoinedQueue(AGENT, "client-l1", (), ("ru", "en"), 5))
                await agent_event(dsn, AgentStatusChanged(AGENT, "online"))
                await Api(system["queries"].url, lead).until(
                    "/desks/express/agents", lambda b: [a["status"] for a in b["agents"]] == ["online"], "anna online"
                )
                yield Journey(system, platforms, portal, topics, dsn, kafka_bootstrap, lead, anna)
            finally:
                system.stop()
                log.info("journey logs: %s", logs)
    finally:
        await topics.delete(kafka_bootstrap)
        server = await asyncpg.connect(pg_dsn)
        try:
            await drop_database(server, database)
        finally:
            await server.close()


def clock(ticket: dict[str, Any], target: str) -> dict[str, Any]:
    clocks: list[dict[str, Any]] = [c for c in ticket["sla"] if c["target"] == target]
    [found] = clocks
    return found


def types(ticket: dict[str, Any]) -> list[str]:
    return [entry["type"] for entry in ticket["timeline"]]


def board_entries(board: dict[str, Any], section: str, ticket_id: str) -> list[dict[str, Any]]:
    return [c for c in board[section]["clocks"] if c["ticket_id"] == ticket_id]


def seconds(later: str, earlier: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


@pytest.mark.timeout(420)
async def test_two_platforms_to_resolution_through_every_service(journey: Journey) -> None:
    api, botx, smtp = Api(journey.system["queries"].url, journey.lead), journey.platforms.botx, journey.platforms.smtp
    mark = uuid.uuid4().hex[:8]
    a, c = Chat(), Chat()

    def chat_bodies(chat: Chat) -> list[str]:
        return [n.body for n in botx.received if n.chat_id == chat.chat]

    def mails_to(address: str, subject: str) -> list[str]:
        return [str(m.message["Subject"]) for m in smtp.received
                if address in m.recipients and subject in str(m.message["Subject"])]  # fmt: skip

    # --- 1. Messages arrive as the platforms post them ------------------------------------------------------
    await journey.post_botx(a, f"Ошибка: не приходят push-уведомления на Android после обновления, код a{mark}")
    bot_id = await journey.install_portal()
    assert journey.portal.bots, "intake registered no bot on the portal at install"
    dialog = str(uuid.uuid4().int % 10**6)
    await journey.post_bitrix24(bot_id, dialog, f"Ошибка при обновлении портала, не работает /crm/, код b{mark}")
    await journey.post_botx(c, f"Предложение: добавьте тёмную тему оформления, код c{mark}")

    # --- 2. A passes preflight, is routed and assigned; its clocks start on the 24/7 calendar -----------------
    a_id = await api.ticket_id(f"a{mark}", "express")
    ticket = await api.ticket(a_id, lambda t: t["assignee"] == AGENT and len(t["sla"]) == 2,
                             "A assigned with both clocks")  # fmt: skip
    assert (ticket["desk_id"], ticket["track_id"], ticket["platform"]) == ("express", "client", "express")
    assert (ticket["status"], ticket["category"], ticket["queue_id"]) == ("assigned", "bug_report", "client-l1")
    lifecycle = [e["type"] for e in ticket["timeline"] if e["stream"] == "ticket"]
    assert lifecycle[:4] == ["TicketOpened", "PreflightPassed", "TicketRouted", "TicketAssigned"], lifecycle
    assert [e["type"] for e in ticket["timeline"] if e["stream"] == "sla"][:2] == ["SlaClockStarted"] * 2
    assert ticket["conversation"][0]["author"] == "customer" and f"a{mark}" in ticket["conversation"][0]["text"]
    first, resolution = clock(ticket, "first_response"), clock(ticket, "resolution")
    assert (first["target_seconds"], resolution["target_seconds"]) == (FIRST_RESPONSE_S, RESOLUTION_S)
    assert seconds(first["deadline"], first["started_at"]) == FIRST_RESPONSE_S  # 24/7: business time = wall time
    assert first["state"] == "running" and not first["breached"]
    at = {"min_position": ticket["position"], "wait_ms": 10000}  # the other read models, as far as this one
    board = await api.get("/desks/express/sla-board", within=60, **at)
    assert {e["target"] for e in board_entries(board, "at_risk", a_id)} == {"first_response", "resolution"}
    agents = await api.get("/desks/express/agents", **at)
    assert [(x["status"], x["assigned"]) for x in agents["agents"] if x["agent_id"] == AGENT] == [("online", 1)]
    backlog = await api.get("/desks/express/backlog", queue="client-l1", **at)
    assert backlog["total"] == 1 and [(q["queue_id"], q["tickets"], q["unassigned"]) for q in backlog["queues"]] == [
        ("client-l1", 1, 0)
    ]
    number = ticket["number"]
    await eventually(lambda: any(REGISTERED in b and number in b for b in chat_bodies(a)), "A's 'registered'", 60)
    await eventually(lambda: any(AGENT_NAME in b and number in b for b in chat_bodies(a)), "A's assignment", 60)
    await eventually(lambda: mails_to(AGENT_MAIL, f"Вам назначено: {number}"), "the agent's assignment mail", 60)

    # --- 3. B: the portal checks run and fail; the remediation reaches the portal's dialog -------------------
    b_id = await api.ticket_id(f"b{mark}", "bitrix24-box")
    portal_ticket = await api.ticket(b_id, lambda t: "PreflightFailed" in types(t), "B's preflight")
    assert (portal_ticket["status"], portal_ticket["platform"]) == ("awaiting_customer", "bitrix24")
    assert portal_ticket["sla"] == [] and portal_ticket["sla_state"] == "none" and portal_ticket["assignee"] is None
    [failed] = [e["detail"] for e in portal_ticket["timeline"] if e["type"] == "PreflightFailed"]
    checks = {check["name"]: check for check in failed["checks"]}
    assert checks["public_address"]["passed"] is False, checks  # 127.0.0.1 is not a public address
    assert checks["public_address"]["remediation"]["ru"] and checks["public_address"]["remediation"]["en"]
    assert "PreflightPassed" not in types(portal_ticket) and "TicketRouted" not in types(portal_ticket)
    await eventually(lambda: [m for m in journey.portal.received if m.dialog_id == dialog], "B's remediation", 60)
    [remediation] = [m.message for m in journey.portal.received if m.dialog_id == dialog]
    assert "Публичный адрес портала" in remediation and journey.portal.domain in remediation, remediation
    assert REGISTERED not in remediation
    assert "portal_admin" in portal_ticket["requester"]["roles"]  # intake asked the portal (user.admin)
    # The administrator asks for a recheck: intake records it, preflight runs the checks again past the cache.
    await journey.post_bitrix24(bot_id, dialog, "/recheck")
    portal_ticket = await api.ticket(b_id, lambda t: types(t).count("PreflightFailed") == 2, "B rechecked")
    assert portal_ticket["status"] == "awaiting_customer" and "PreflightPassed" not in types(portal_ticket)
    assert [m["text"] for m in portal_ticket["conversation"]][-1] == "/recheck"
    await eventually(lambda: len([m for m in journey.portal.received if m.dialog_id == dialog]) == 2,
                     "B's second remediation", 60)  # fmt: skip

    # --- 4. C: an incomplete feature request fails, the customer completes it, it is rechecked and passes ----
    c_id = await api.ticket_id(f"c{mark}", "express")
    request = await api.ticket(c_id, lambda t: "PreflightFailed" in types(t), "C's preflight")
    assert (request["status"], request["category"], request["queue_id"]) == ("awaiting_customer", None, None)
    [incomplete] = [e["detail"] for e in request["timeline"] if e["type"] == "PreflightFailed"]
    assert [ch["name"] for ch in incomplete["checks"] if not ch["passed"]] == ["feature_request_incomplete"]
    await eventually(lambda: any("В каком разделе приложения" in b for b in chat_bodies(c)), "C's questions", 60)
    [questions] = [b for b in chat_bodies(c) if "В каком разделе приложения" in b]
    assert "команде продукта" in questions and "портал" not in questions, questions  # no portal to fix
    await journey.post_botx(c, "В настройках профиля, в веб-версии и на Android; просят каждую неделю, это важно")
    request = await api.ticket(c_id, lambda t: t["queue_id"] is not None, "C routed after the answer")
    assert types(request).index("PreflightFailed") < types(request).index("PreflightPassed")
    assert (request["category"], request["queue_id"], request["status"]) == ("feature_request", "product-requests",
                                                                             "routed")  # fmt: skip
    assert [m["author"] for m in request["conversation"]] == ["customer", "customer"]
    await eventually(lambda: any(REGISTERED in b for b in chat_bodies(c)), "C's 'registered'", 60)
    # The agent plans it from the dashboard; the organisation's register shows it, the requester is told.
    position = await journey.act(journey.anna, c_id, "feature_outcome", outcome="planned", text="Во втором квартале")
    register = await api.at(f"/desks/express/organisations/{request['organisation_id']}/tickets", position)
    [entry] = [e for e in register["tickets"] if e["ticket_id"] == c_id]
    assert (entry["feature_outcome"], entry["feature_reason"], entry["outcome_by"]) == (
        "planned", "Во втором квартале", AGENT)  # fmt: skip
    await eventually(lambda: any("запланирован: Во втором квартале" in b for b in chat_bodies(c)), "C told", 60)

    # --- 5. A's first response: the warning at half the target, then the breach, mailed to agent and lead ---
    ticket = await api.ticket(a_id, lambda t: clock(t, "first_response")["warning_level"] >= WARNING,
                             "A's SLA warning", FIRST_RESPONSE_S + 30)  # fmt: skip
    assert "SlaWarning" in types(ticket)
    [warned] = [e for e in ticket["timeline"] if e["type"] == "SlaWarning"]
    assert warned["detail"]["target"] == "first_response" and warned["detail"]["level"] == WARNING, warned
    started = clock(ticket, "first_response")["started_at"]
    assert seconds(warned["detail"]["fired_at"], started) == WARNING * FIRST_RESPONSE_S, warned  # 24/7: at 30 s
    await eventually(lambda: mails_to(AGENT_MAIL, f"Предупреждение SLA: {number}"), "the agent's warning mail", 60)
    await eventually(lambda: mails_to(LEAD_MAIL, f"Предупреждение SLA: {number}"), "the lead's warning mail", 60)
    ticket = await api.ticket(a_id, lambda t: t["sla_state"] == "breached", "A's SLA breach",
                             FIRST_RESPONSE_S + 30)  # fmt: skip
    first = clock(ticket, "first_response")
    assert first["breached"] is True and first["state"] == "running"
    [breached] = [e["detail"] for e in ticket["timeline"] if e["type"] == "SlaBreached"]
    assert breached["fired_at"] == breached["deadline"] == first["deadline"], breached  # at the deadline
    assert types(ticket).index("SlaWarning") < types(ticket).index("SlaBreached")
    board = await api.until("/desks/express/sla-board", lambda b: board_entries(b, "breached", a_id),
                            "A on the board's breached section")  # fmt: skip
    assert [e["target"] for e in board_entries(board, "breached", a_id)] == ["first_response"]
    assert board_entries(board, "breached", a_id)[0]["assignee"] == AGENT
    await eventually(lambda: mails_to(AGENT_MAIL, f"Нарушен SLA: {number}"), "the agent's breach mail", 60)
    await eventually(lambda: mails_to(LEAD_MAIL, f"Нарушен SLA: {number}"), "the lead's breach mail", 60)

    # --- 6. The agent replies through the dashboard with her own token; the customer's chat gets it -----------
    reply = f"Переустановите приложение из магазина, пожалуйста ({mark})"
    position = await journey.act(journey.anna, a_id, "reply", text=reply)
    ticket = await api.ticket_at(a_id, position)
    assert ticket["conversation"][-1] | {"at": None} == {
        "at": None, "author": "agent", "author_id": AGENT, "message_id": ticket["conversation"][-1]["message_id"],
        "text": reply, "attachments": [],
    }  # fmt: skip
    first = clock(ticket, "first_response")
    assert (first["state"], first["breached"]) == ("met", True)  # answered, late
    assert clock(ticket, "resolution")["state"] == "running"
    assert ticket["sla_state"] == "running" and ticket["sla_due_at"] == clock(ticket, "resolution")["deadline"]
    board = await api.get("/desks/express/sla-board", min_position=position, wait_ms=10000)
    assert board_entries(board, "breached", a_id) == []  # a met clock leaves the board
    await eventually(lambda: any(reply in b for b in chat_bodies(a)), "the reply in A's chat", 60)
    assert ticket["status"] == "in_progress"

    # --- 7. She asks the customer whether it helped: the resolution clock pauses; the answer resumes it --------
    question, due_before = f"Помогла ли переустановка? ({mark})", clock(ticket, "resolution")["deadline"]
    position = await journey.act(journey.anna, a_id, "request_info", text=question)
    ticket = await api.ticket_at(a_id, position)
    paused = clock(ticket, "resolution")
    assert (ticket["status"], ticket["sla_state"], paused["state"], paused["deadline"]) == (
        "waiting_on_customer", "paused", "paused", None)  # fmt: skip
    board = await api.get("/desks/express/sla-board", min_position=position, wait_ms=10000)
    assert [e["target"] for e in board_entries(board, "paused", a_id)] == ["resolution"]
    assert board_entries(board, "at_risk", a_id) == []
    await eventually(lambda: any(question in b for b in chat_bodies(a)), "the question in A's chat", 60)
    answer = f"Да, спасибо, после переустановки уведомления приходят ({mark})"
    await journey.post_botx(a, answer)  # the same user in the same chat, as BotX posts it
    ticket = await api.ticket(a_id, lambda t: clock(t, "resolution")["state"] == "running", "the clock resumed")
    assert ticket["conversation"][-1]["text"] == answer and ticket["status"] == "in_progress"
    assert [m["author"] for m in ticket["conversation"]] == ["customer", "agent", "customer"]
    # The time it waited on the customer does not count: the deadline moved by the pause (whole seconds).
    [paused_at] = [e["detail"]["paused_at"] for e in ticket["timeline"] if e["type"] == "SlaClockPaused"]
    [resumed_at] = [e["detail"]["resumed_at"] for e in ticket["timeline"] if e["type"] == "SlaClockResumed"]
    assert seconds(clock(ticket, "resolution")["deadline"], due_before) == seconds(resumed_at, paused_at) >= 0
    assert len((await api.get("/tickets", q=f"a{mark}", desk="express"))["tickets"]) == 1  # no second ticket

    # --- 8. The agent resolves: the clocks stop, the board and her load empty, the customer is told ----------
    position = await journey.act(journey.anna, a_id, "resolve", text=f"Решено переустановкой ({mark})")
    ticket = await api.ticket_at(a_id, position)
    assert ticket["status"] == "resolved" and ticket["resolved_at"] is not None
    assert (clock(ticket, "resolution")["state"], clock(ticket, "resolution")["breached"]) == ("met", False)
    assert ticket["sla_state"] == "met" and ticket["sla_due_at"] is None  # no clock pending
    assert clock(ticket, "first_response")["breached"] is True  # the late first response stays on record
    board = await api.get("/desks/express/sla-board", min_position=position, wait_ms=10000)
    assert all(board_entries(board, section, a_id) == [] for section in ("at_risk", "breached", "paused"))
    agents = await api.get("/desks/express/agents", min_position=position, wait_ms=10000)
    assert [x["assigned"] for x in agents["agents"] if x["agent_id"] == AGENT] == [0]
    listed = await api.get("/tickets", status="resolved", desk="express", min_position=position, wait_ms=10000)
    assert [t["ticket_id"] for t in listed["tickets"]] == [a_id]
    metrics = await api.get("/desks/express/metrics", min_position=position, wait_ms=10000)
    today = [d for d in metrics["days"] if d["resolved"]]
    assert len(today) == 1 and today[0]["resolved"] == 1 and today[0]["breaches"] >= 1, metrics
    await eventually(lambda: any(f"Обращение {number} решено" in b for b in chat_bodies(a)), "A's resolution", 60)
    page = await journey.page(journey.anna, f"/tickets/{a_id}")  # the agent's ticket page, as her browser reads it
    assert 'data-status="resolved"' in page and reply in page and answer in page

    # --- 9. What each platform got, once; the ticket knows its deliveries; nothing was dead-lettered ---------
    ticket = await api.ticket(a_id, lambda t: any(d["template"] == "ticket_resolved"
                                                               for d in t["deliveries"]), "A's deliveries")  # fmt: skip
    delivered = {d["template"] for d in ticket["deliveries"] if d["state"] == "delivered"}
    assert {"ticket_opened", "ticket_assigned", "agent_reply", "ticket_resolved"} <= delivered, ticket["deliveries"]
    assert {"sla_warning_agent", "sla_breach_agent", "sla_warning_lead", "sla_breach_lead"} <= delivered
    for chat in (a, c):
        assert len(chat_bodies(chat)) == len(set(chat_bodies(chat))), f"delivered twice: {chat_bodies(chat)}"
    assert sum(reply in b for b in chat_bodies(a)) == 1
    assert len(mails_to(AGENT_MAIL, f"Нарушен SLA: {number}")) == 1
    assert await journey.dead_letters() == {}
    log.info("the journey took %s", journey.elapsed())
