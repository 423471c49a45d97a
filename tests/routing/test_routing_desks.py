"""Routing on the packaged desk files (ticketflow.deskconfig), through the adapter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from routing_builders import MONDAY_11_MSK, World, given, joined, opened

from ticketflow.contracts import ticket_events as e
from ticketflow.deskconfig import CONFIG_DIR_ENV, PACKAGED_DESKS, DeskConfigError
from ticketflow.routing.desks import load
from ticketflow.routing.domain.decisions import decide_ready
from ticketflow.routing.domain.rules import TicketFacts, route
from ticketflow.routing.domain.state import RoutingState

DESKS = load()
NOW = int(MONDAY_11_MSK.timestamp())


def facts(desk: str, track: str, category: str = "installation", **kw: str) -> TicketFacts:
    return TicketFacts(
        desk,
        track,
        category,
        kw.get("language", "ru"),
        kw.get("contract_tier", "standard"),
        kw.get("priority", "normal"),  # type: ignore[arg-type]
    )


def test_box_tickets_go_to_l1_urgent_ones_to_l2_and_out_of_scope_to_partners() -> None:
    assert route(DESKS, facts("bitrix24-box", "box")).queue.id == "box-l1"
    assert route(DESKS, facts("bitrix24-box", "box", priority="urgent")).queue.id == "box-l2"
    referral = route(DESKS, facts("bitrix24-box", "box", "custom_development"))
    assert (referral.queue.id, referral.queue.strategy) == ("partners-referral", "none")


def test_express_tracks_and_contract_tiers() -> None:
    assert route(DESKS, facts("express", "client")).queue.id == "client-l1"
    assert route(DESKS, facts("express", "client", "feature_request")).queue.id == "product-requests"
    assert route(DESKS, facts("express", "technical-standard")).queue.id == "technical-l2"
    premium = route(DESKS, facts("express", "technical-premium", contract_tier="premium"))
    assert (premium.queue.id, premium.rule_id) == ("technical-l3", "premium-contract")


def test_a_queue_s_fallback_is_its_overflow_queue() -> None:
    assert DESKS.queues["box-l1"].overflow == "box-l2"
    assert DESKS.queues["technical-l2"].overflow == "technical-l3"


def test_a_desk_without_a_matching_rule_uses_its_own_fallback_queue() -> None:
    decision = route(DESKS, facts("express", "nonexistent-track"))
    assert decision.fell_back and decision.queue.id == "client-l1"


def test_contract_tier_comes_from_the_tenant_else_the_track() -> None:
    assert DESKS.contract_tier("express", "technical-premium", "unknown-bot") == "premium"
    state = RoutingState(DESKS)
    ticket = uuid.uuid4()
    given(
        state,
        *joined("olga", "technical-l3", skills=["server"]),
        opened(ticket, "express", "technical-premium", tenant="unknown-bot"),
        e.PreflightPassed(ticket, "installation"),
    )
    decision = decide_ready(state, ticket, NOW)
    assert decision is not None
    assert decision.events[0] == e.TicketRouted(
        ticket,
        "technical-l3",
        "l3",
        "normal",
        "premium-contract",
        "rule premium-contract: desk=express, contract_tier=premium",
    )
    assert decision.events[1] == e.TicketAssigned(ticket, "olga", "skill_based")


STAFF_DIRECTORY = (
    Path(__file__).parents[2].joinpath("services/notifications/src/ticketflow/notifications/config/local.toml")
)


def test_every_queue_someone_works_has_a_lead_from_the_staff_directory() -> None:
    staff = {p["id"]: p["role"] for p in tomllib.loads(STAFF_DIRECTORY.read_text(encoding="utf-8"))["people"]}
    worked = {q.id: q.lead_id for q in DESKS.queues.values() if q.strategy != "none"}
    assert worked and all(worked.values()), worked
    assert {staff.get(lead) for lead in worked.values()} == {"lead"}
    assert DESKS.queues["partners-referral"].lead_id is None


async def test_a_no_answer_reassignment_names_the_queue_lead_of_the_desk_file() -> None:
    friday_1850_msk = datetime(2026, 11, 27, 15, 50, tzinfo=UTC)
    world = World(DESKS, start=friday_1850_msk)
    await world.agent("anna", *joined("anna", "box-l1"))
    await world.agent("boris", *joined("boris", "box-l1"))
    ticket = await world.new_ticket("bitrix24-box", "box", "configuration")
    assert world.assignee(ticket) == "anna"
    world.later(timedelta(hours=63, minutes=30))  # Monday 10:20 Moscow: 30 business minutes used
    assert await world.app.tick() == 1
    assert (await world.events(ticket))[-2:] == [
        e.TicketUnassigned(ticket, "anna", "no answer within 30 business minutes", "routing", "lead-boris"),
        e.TicketAssigned(ticket, "boris", "round_robin"),
    ]


def test_a_broken_desk_file_is_refused_with_file_line_and_problem(tmp_path: Path) -> None:
    for source in Path(PACKAGED_DESKS).glob("*.toml"):  # type: ignore[arg-type]
        shutil.copy(source, tmp_path)
    broken = tmp_path / "express.toml"
    lines = broken.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if line.startswith('strategy = "least_loaded"'))
    lines[number] = 'strategy = "lottery"'
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(DeskConfigError, match=rf"{broken}:{number + 1}: queues\[\d\]\.strategy: Invalid enum"):
        load(tmp_path)


def test_the_service_refuses_to_start_on_a_broken_desk_file(tmp_path: Path) -> None:
    for source in Path(PACKAGED_DESKS).glob("*.toml"):  # type: ignore[arg-type]
        shutil.copy(source, tmp_path)
    broken = tmp_path / "bitrix24-box.toml"
    broken.write_text(broken.read_text().replace('strategy = "round_robin"', 'strategy = "coin_toss"', 1))
    env = {**os.environ, CONFIG_DIR_ENV: str(tmp_path), "TICKETFLOW_ROUTING_PORT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "ticketflow.routing"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f"routing: refusing to start: {broken}:" in done.stderr
    assert "strategy: Invalid enum value 'coin_toss'" in done.stderr
