"""Settings from the environment: types and bounds checked, one line per bad variable naming it, secrets
never shown; the generated settings section of docs/configuration.md is what the code reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from ticketflow.runtime.configdoc import BEGIN, END, discover, section
from ticketflow.runtime.settings import ServiceSettings, SettingsError, load_settings, prefixed

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


class ExampleSettings(ServiceSettings):
    model_config = prefixed("example")
    service = "example"
    port: int = Field(8099, ge=1, le=65535)
    checkpoint_seconds: float = Field(5.0, gt=0)


def test_good_values_are_read_with_their_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_EXAMPLE_CHECKPOINT_SECONDS", "2.5")
    monkeypatch.setenv("TICKETFLOW_LOG_LEVEL", "debug")
    monkeypatch.setenv("TICKETFLOW_LOG_FORMAT", "text")
    settings = load_settings(ExampleSettings)
    assert (settings.checkpoint_seconds, settings.log_level, settings.log_format, settings.port) == (
        2.5, "DEBUG", "text", 8099,
    )  # fmt: skip


def test_each_bad_value_is_one_line_naming_its_variable_and_a_secret_is_not_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKETFLOW_EXAMPLE_CHECKPOINT_SECONDS", "often")
    monkeypatch.setenv("TICKETFLOW_EXAMPLE_PORT", "70000")
    monkeypatch.setenv("TICKETFLOW_PG_DSN", "12")  # a number is a valid str: no error, but never echoed
    with pytest.raises(SettingsError) as bad:
        load_settings(ExampleSettings, pg_dsn=None)
    lines = str(bad.value).splitlines()
    assert len(lines) == 3
    assert any(
        line.startswith("example: TICKETFLOW_EXAMPLE_CHECKPOINT_SECONDS: ") and "'often'" in line for line in lines
    )
    assert any(line.startswith("example: TICKETFLOW_EXAMPLE_PORT: ") and "65535" in line for line in lines)
    assert any(line.startswith("example: TICKETFLOW_PG_DSN: ") and "(hidden)" in line for line in lines)


def test_the_committed_settings_section_is_what_the_settings_classes_say() -> None:
    committed = DOC.read_text(encoding="utf-8")
    generated = section(discover())
    assert BEGIN in committed and END in committed
    current = BEGIN + committed.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert current == generated, "docs/configuration.md is stale: run `make config-docs`"
