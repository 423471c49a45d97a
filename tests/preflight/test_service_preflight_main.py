"""Composition without infrastructure: settings, the stable-versions feed and start-up validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticketflow.deskconfig import load_desks
from ticketflow.preflight import main
from ticketflow.preflight.adapters.checks import PUBLIC_ONLY, ConfigError
from ticketflow.preflight.settings import PreflightSettings
from ticketflow.runtime.settings import SettingsError, load_settings


async def test_the_feed_file_sets_the_stable_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = tmp_path / "stable.toml"
    feed.write_text('main = "25.100.300"\nim = "25.0.100"\n', encoding="utf-8")
    monkeypatch.setenv("TICKETFLOW_PREFLIGHT_STABLE_VERSIONS", str(feed))
    configs, feeds = main.checks_configs(load_desks(), load_settings(PreflightSettings))
    assert dict((await feeds["bitrix24-box"].current()).versions) == {"main": "25.100.300", "im": "25.0.100"}
    assert configs["bitrix24-box"].timeout_s == 5.0
    assert configs["bitrix24-box"].address_policy == PUBLIC_ONLY  # production: public addresses only


def test_the_desks_url_feed_is_fetched_when_needed_not_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TICKETFLOW_PREFLIGHT_STABLE_VERSIONS", raising=False)
    _, feeds = main.checks_configs(load_desks(), load_settings(PreflightSettings))
    feed = feeds["bitrix24-box"]
    assert feed.url == load_desks().desk("bitrix24-box").preflight.stable_versions_feed and feed.fetches == 0


def test_a_malformed_feed_stops_start_up(tmp_path: Path) -> None:
    feed = tmp_path / "stable.json"
    feed.write_text('{"main": 25}', encoding="utf-8")
    with pytest.raises(ConfigError):
        main.build(load_settings(PreflightSettings, stable_versions=feed), load_desks())


def test_a_bad_setting_is_refused_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_PREFLIGHT_BATCH", "lots")
    with pytest.raises(SettingsError, match="TICKETFLOW_PREFLIGHT_BATCH"):
        load_settings(PreflightSettings)


def test_build_composes_a_service_named_preflight_from_its_settings() -> None:
    settings = load_settings(PreflightSettings)
    service = main.build(settings, load_desks())
    assert (service.name, service.settings, settings.topic, settings.group) == (
        "preflight", settings, "ticket.events", "preflight",
    )  # fmt: skip
