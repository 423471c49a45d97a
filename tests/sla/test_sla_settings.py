"""The SLA service's settings: the variables it read before the floor plan, under the same names, with
the same defaults; a bad value is refused with one line naming its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticketflow.runtime.settings import SettingsError, load_settings
from ticketflow.sla.settings import SlaSettings


def test_the_same_variables_as_before_with_the_same_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOPIC", "CHECKPOINT_SECONDS", "PORT", "GROUP_ID", "MAX_RECORDS"):
        monkeypatch.delenv(f"TICKETFLOW_SLA_{name}", raising=False)
    monkeypatch.delenv("TICKETFLOW_DESK_CONFIG_DIR", raising=False)
    defaults = load_settings(SlaSettings)
    assert (defaults.topic, defaults.checkpoint_seconds, defaults.port, defaults.group_id, defaults.max_records) == (
        "ticket.events", 5.0, 8004, "sla", 500,
    )  # fmt: skip
    assert defaults.desk_folder() is None  # the packaged desks
    monkeypatch.setenv("TICKETFLOW_SLA_TOPIC", "ticket.events.test")
    monkeypatch.setenv("TICKETFLOW_SLA_CHECKPOINT_SECONDS", "0.5")
    monkeypatch.setenv("TICKETFLOW_SLA_PORT", "9004")
    monkeypatch.setenv("TICKETFLOW_DESK_CONFIG_DIR", "/etc/ticketflow/desks")
    read = load_settings(SlaSettings)
    assert (read.topic, read.checkpoint_seconds, read.port) == ("ticket.events.test", 0.5, 9004)
    assert read.desk_folder() == Path("/etc/ticketflow/desks")
    assert SlaSettings.variable("desk_config_dir") == "TICKETFLOW_DESK_CONFIG_DIR"


def test_a_bad_value_is_refused_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_SLA_CHECKPOINT_SECONDS", "often")
    monkeypatch.setenv("TICKETFLOW_SLA_MAX_RECORDS", "0")
    with pytest.raises(SettingsError) as bad:
        load_settings(SlaSettings)
    lines = str(bad.value).splitlines()
    assert len(lines) == 2
    assert any(line.startswith("sla: TICKETFLOW_SLA_CHECKPOINT_SECONDS: ") and "'often'" in line for line in lines)
    assert any(line.startswith("sla: TICKETFLOW_SLA_MAX_RECORDS: ") for line in lines)
