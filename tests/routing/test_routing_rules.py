"""Queues and tiers from the desk configuration: first matching rule wins, and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from routing_builders import DESKS, GOLD_TENANT
from routing_toml import from_mapping, load

from ticketflow.routing.domain.config import ConfigError
from ticketflow.routing.domain.rules import TicketFacts, route


def facts(desk: str = "bitrix24-box", track: str = "box", category: str = "configuration", **kw: str) -> TicketFacts:
    values = {"language": "ru", "contract_tier": "standard", "priority": "normal", **kw}
    return TicketFacts(desk, track, category, values["language"], values["contract_tier"], values["priority"])  # type: ignore[arg-type]


def test_bitrix24_box_goes_to_the_box_queue_and_names_the_rule() -> None:
    decision = route(DESKS, facts())
    assert (decision.queue.id, decision.tier, decision.rule_id) == ("b24-box", "standard", "b24-box")
    assert decision.reason == "rule b24-box: desk=bitrix24-box, track=box"
    assert not decision.fell_back


def test_out_of_scope_work_goes_to_partner_referral_which_has_no_agents() -> None:
    decision = route(DESKS, facts(category="custom_development"))
    assert decision.queue.id == "partner-referral"
    assert decision.queue.strategy == "none"
    assert "category=custom_development" in decision.reason


def test_express_client_support_has_no_sla_tier() -> None:
    decision = route(DESKS, facts("express", "client"))
    assert (decision.queue.id, decision.tier) == ("express-client", "no-sla")


def test_express_technical_support_tier_comes_from_the_contract() -> None:
    gold = route(DESKS, facts("express", "technical", contract_tier="gold"))
    assert (gold.queue.id, gold.tier, gold.skills) == ("express-technical-premium", "gold", ("express-server",))
    plain = route(DESKS, facts("express", "technical", contract_tier="silver"))
    assert (plain.queue.id, plain.tier, plain.rule_id) == ("express-technical", "silver", "express-technical")


def test_priority_condition_is_matched_in_rule_order() -> None:
    urgent = route(DESKS, facts("express", "technical", priority="urgent"))
    assert urgent.rule_id == "express-technical-urgent"
    assert urgent.reason == "rule express-technical-urgent: desk=express, track=technical, priority=urgent"


def test_nothing_matching_goes_to_the_fallback_queue_marked_for_the_warning_metric() -> None:
    decision = route(DESKS, facts("generic", "default"))
    assert decision.fell_back
    assert (decision.queue.id, decision.rule_id) == ("triage", "fallback")
    assert decision.reason.startswith("no rule matched (desk=generic, track=default")


def test_the_contract_tier_of_a_tenant_is_configured() -> None:
    assert DESKS.contract_tier("express", "technical", GOLD_TENANT) == "gold"
    assert DESKS.contract_tier("express", "technical", "someone-else") == "standard"


def test_a_rule_naming_an_unknown_queue_is_refused_with_the_file_and_rule(tmp_path: Path) -> None:
    data = {
        "fallback_queue": "triage",
        "queues": [{"id": "triage", "desk": "any"}],
        "rules": [{"id": "r1", "queue": "nowhere"}],
    }
    with pytest.raises(ConfigError, match=r"routing\.toml: rules\[0\] \(r1\): unknown queue 'nowhere'"):
        from_mapping(data, "routing.toml")


def test_a_wrong_field_type_names_the_path() -> None:
    data = {"fallback_queue": "triage", "queues": [{"id": "triage", "desk": "any", "strategy": "lottery"}], "rules": []}
    with pytest.raises(ConfigError, match=r"desk\.toml: .*\$\.queues\[0\]\.strategy"):
        from_mapping(data, "desk.toml")


def test_a_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text('[routing]\nfallback_queue = "triage"\nqueues = [ = \n')
    with pytest.raises(ConfigError, match=rf"{path}: .*line 3"):
        load(path)
