"""Start-up without infrastructure: a bad setting or tenant file stops `python -m ticketflow.intake` with
exit 2 and the problem, and `chat.inbound` records are decoded (or refused with why) before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from support.records import FakeRecord

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.intake.consumer import decode_chat_messages
from ticketflow.intake.main import build
from ticketflow.intake.settings import IntakeSettings
from ticketflow.intake.tenants import ConfigError
from ticketflow.runtime.settings import load_settings


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKETFLOW_INTAKE_")}
    return subprocess.run(
        [sys.executable, "-m", "ticketflow.intake"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"TICKETFLOW_INTAKE_BATCH": "0"}, "TICKETFLOW_INTAKE_BATCH: Input should be greater than or equal to 1"),
        ({"TICKETFLOW_INTAKE_ACCEPT": "db"}, "TICKETFLOW_INTAKE_ACCEPT: Input should be 'kafka' or 'store'"),
        ({"TICKETFLOW_INTAKE_TENANTS": "/nonexistent/tenants.toml"}, "/nonexistent/tenants.toml"),
    ],
)
def test_a_bad_setting_or_tenant_file_stops_the_service_with_exit_2(env: dict[str, str], said: str) -> None:
    done = start(env)
    assert done.returncode == 2, done.stderr
    assert "intake: refusing to start" in done.stderr and said in done.stderr


def test_build_reads_the_tenant_file_it_is_given(tmp_path: Path) -> None:
    broken = tmp_path / "tenants.toml"
    broken.write_text("[[express]]\nbot_id = 'not a uuid'\n")
    with pytest.raises(ConfigError, match=r"tenants\.toml"):
        build(load_settings(IntakeSettings, tenants=str(broken)))
    broken.write_text("")
    assert build(load_settings(IntakeSettings, tenants=str(broken))).name == "intake"


def test_chat_inbound_records_are_decoded_or_refused_with_why() -> None:
    now = datetime.now(UTC)
    good = ChatMessage("generic", "acme", "c-1", "m-1", ChatSender("u-1", "A\x00nn"), "hi\x00there", now)
    bad_id = ChatMessage("generic", "acme", "c\x00-2", "m-2", ChatSender("u-1"), "x", now)
    values = [msgspec.json.encode(good), b"{not json", msgspec.json.encode(bad_id), None]
    records = [FakeRecord("chat.inbound", 0, n, None, value) for n, value in enumerate(values)]
    decoded, undecodable = decode_chat_messages(records)
    [(record, message)] = decoded
    assert record.offset == 0 and (message.text, message.sender.display_name) == ("hi\ufffdthere", "A\ufffdnn")
    assert [r.offset for r, _ in undecodable] == [1, 2, 3]
    assert "conversation_id" in undecodable[1][1] and "NUL" in undecodable[1][1]
