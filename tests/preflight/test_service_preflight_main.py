"""Wiring without infrastructure: the stable-versions feed and start-up validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticketflow.deskconfig import load_desks
from ticketflow.preflight import main
from ticketflow.preflight.checks import ConfigError


def test_the_feed_file_sets_the_stable_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = tmp_path / "stable.toml"
    feed.write_text('main = "25.100.300"\nim = "25.0.100"\n', encoding="utf-8")
    monkeypatch.setenv(main.STABLE_VERSIONS_ENV, str(feed))
    configs = main.production_checks_configs(load_desks())
    assert dict(configs["bitrix24-box"].stable_versions) == {"main": "25.100.300", "im": "25.0.100"}
    assert configs["bitrix24-box"].timeout_s == 5.0
    assert not configs["bitrix24-box"].address_policy.allow_loopback  # production: public addresses only


def test_a_url_feed_is_not_fetched_so_updates_are_skipped_not_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(main.STABLE_VERSIONS_ENV, raising=False)
    configs = main.production_checks_configs(load_desks())
    assert dict(configs["bitrix24-box"].stable_versions) == {}


def test_a_malformed_feed_stops_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = tmp_path / "stable.json"
    feed.write_text('{"main": 25}', encoding="utf-8")
    monkeypatch.setenv(main.STABLE_VERSIONS_ENV, str(feed))
    with pytest.raises(ConfigError):
        main.build(load_desks())


def test_build_subscribes_to_ticket_events_with_the_preflight_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(main.STABLE_VERSIONS_ENV, raising=False)
    service = main.build(load_desks())
    [subscriber] = service.broker.subscribers
    assert "ticket.events" in str(subscriber.topics)  # type: ignore[attr-defined]
    assert service.on_start  # the service is attached once the pool exists
