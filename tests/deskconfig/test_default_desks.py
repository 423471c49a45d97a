"""Given the packaged desks, then they load and answer the seed's rules."""

from __future__ import annotations

import shutil
import typing
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ticketflow.cli.app import main
from ticketflow.contracts import values
from ticketflow.deskconfig import PACKAGED_DESKS, DeskRegistry, TicketFacts, load_desks, model

MSK = ZoneInfo("Europe/Moscow")


@pytest.fixture(scope="module")
def registry() -> DeskRegistry:
    return load_desks()


def msk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=MSK)


def test_both_default_desks_load(registry: DeskRegistry) -> None:
    assert sorted(registry.desks) == ["bitrix24-box", "express"]
    assert main(["desks", "check", str(PACKAGED_DESKS)]) == 0


def test_the_environment_variable_chooses_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(PACKAGED_DESKS / "express.toml", tmp_path / "express.toml")
    monkeypatch.setenv("TICKETFLOW_DESK_CONFIG_DIR", str(tmp_path))
    assert sorted(load_desks().desks) == ["express"]


def test_tenants_map_to_their_desk_and_default_track(registry: DeskRegistry) -> None:
    route = registry.route("bitrix24", "A1B2C3D4E5F60718293A4B5C6D7E8F90")  # member_id, any case
    assert route is not None and (route.desk.id, route.track.id) == ("bitrix24-box", "box")
    assert registry.desk_for("bitrix24", "portal.example.ru") is registry.desk("bitrix24-box")
    contract = registry.route("express", "3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69")
    assert contract is not None
    assert (contract.desk.id, contract.track.id, contract.contract_tier) == (
        "express",
        "technical-standard",
        "standard",
    )
    assert registry.route("express", "00000000-0000-0000-0000-000000000000") is None
    assert registry.route("generic", "A1B2C3D4E5F60718293A4B5C6D7E8F90") is None


def test_only_portal_admins_may_open_bitrix24_box_tickets(registry: DeskRegistry) -> None:
    assert registry.track("bitrix24-box", "box").eligibility == ("portal_admin",)
    technical = registry.track("express", "technical-standard")
    assert set(technical.eligibility) == {"system_admin", "partner"}


def test_bitrix24_box_calendar_is_weekdays_10_to_19_moscow(registry: DeskRegistry) -> None:
    calendar = registry.calendar("bitrix24-box", "box")
    assert calendar.is_open(msk(2025, 3, 12, 10, 0))
    assert not calendar.is_open(msk(2025, 3, 12, 19, 0))
    assert not calendar.is_open(msk(2025, 3, 15, 12, 0))  # Saturday
    assert calendar.is_open(msk(2025, 11, 1, 12, 0))  # moved working Saturday
    assert not calendar.is_open(msk(2025, 11, 3, 12, 0))  # ... and the Monday off
    assert calendar.next_opening(msk(2025, 3, 14, 19, 0)) == msk(2025, 3, 17, 10, 0)
    assert registry.calendar("bitrix24-box", "box") is calendar  # built once, cache stays warm


def test_express_client_support_hours(registry: DeskRegistry) -> None:
    calendar = registry.calendar("express", "client")
    assert calendar.is_open(msk(2025, 3, 12, 8, 0)) and not calendar.is_open(msk(2025, 3, 12, 21, 0))
    assert not calendar.is_open(msk(2025, 3, 15, 9, 59)) and calendar.is_open(msk(2025, 3, 15, 10, 0))
    assert not calendar.is_open(msk(2025, 3, 15, 18, 0))
    assert calendar.is_open(msk(2025, 6, 12, 10, 0)) and not calendar.is_open(msk(2025, 6, 12, 9, 0))  # Russia Day
    assert calendar.is_open(msk(2025, 11, 1, 8, 0))  # a working Saturday works weekday hours


def test_sla_policies(registry: DeskRegistry) -> None:
    assert registry.sla_policy("express", "client", "urgent") is None  # client support has no SLA
    policy = registry.sla_policy("bitrix24-box", "box", "normal")
    assert policy is not None
    assert (policy.warnings, policy.recalculation) == ((0.5, 0.75, 0.9), "keep_elapsed")


def test_out_of_scope_requests_are_referred_to_partners(registry: DeskRegistry) -> None:
    desk = registry.desk("bitrix24-box")
    out_of_scope = {c.id for c in desk.preflight.scope if not c.in_scope}
    assert out_of_scope == {
        "software_installation",
        "server_diagnostics",
        "code_optimisation",
        "custom_development",
        "business_tasks",
    }
    referral = next(rule for rule in desk.routing.rules if rule.queue == "partners-referral")
    assert set(referral.category) == out_of_scope
    assert set(desk.preflight.checks) == set(typing.get_args(model.CheckName))


def test_literals_match_the_contracts() -> None:
    assert typing.get_args(model.Priority) == typing.get_args(values.Priority)
    assert typing.get_args(model.Platform) == typing.get_args(values.Platform)
    assert set(typing.get_args(model.Role)) <= set(typing.get_args(values.Role))


def test_routing_rules_first_match_wins_with_a_fallback(registry: DeskRegistry) -> None:
    routing = registry.desk("express").routing
    premium_feature = TicketFacts(
        track="client", priority="normal", category="feature_request", contract_tier="premium"
    )
    assert routing.queue_for(premium_feature) == "product-requests"  # listed before "premium-contract"
    assert routing.queue_for(TicketFacts(track="technical-premium", priority="low", contract_tier="premium")) == (
        "technical-l3"
    )
    assert routing.queue_for(TicketFacts(track="technical-standard", priority="high")) == "technical-l2"
    assert routing.queue_for(TicketFacts(track="client", priority="low", category="bug_report")) == "client-l1"
    box = registry.desk("bitrix24-box").routing
    assert box.queue_for(TicketFacts(track="box", priority="urgent", category="custom_development")) == (
        "partners-referral"
    )


def test_warming_builds_every_tracks_calendar(registry: DeskRegistry) -> None:
    registry.warm_calendars(at=int(msk(2025, 6, 1).timestamp()))
    for desk in registry.desks.values():
        for track in desk.tracks:
            assert registry.calendar(desk.id, track.id).spec.timezone == "Europe/Moscow"


def test_every_worked_queue_of_the_packaged_desks_has_its_lead() -> None:
    registry = load_desks()
    leads = {q.id: q.lead for desk in registry.desks.values() for q in desk.queues}
    assert leads == {
        "box-l1": "lead-boris",
        "box-l2": "lead-boris",
        "partners-referral": None,
        "client-l1": "lead-boris",
        "product-requests": "lead-boris",
        "technical-l2": "lead-boris",
        "technical-l3": "lead-boris",
    }
