"""The service's own configuration file (channel accounts and staff): validated with clear errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ticketflow.notifications.adapters.channels import Bitrix24Channel, EmailChannel, ExpressChannel, WebhookChannel
from ticketflow.notifications.adapters.directory import (
    ConfigError,
    Directory,
    build_channels,
    default_config_path,
    load_config,
    parse_config,
)
from ticketflow.notifications.domain.model import Channel
from ticketflow.notifications.domain.policy import Role

RELAY = '[[smtp_relays]]\nname = "main"\nhostname = "127.0.0.1"\nsender = "s@example.test"\n'


def person(**fields: str) -> str:
    values = {"id": '"anna"', "name": '"Anna"', "role": '"agent"', "channels": '["email"]'} | fields
    return "[[people]]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())


def test_the_packaged_local_configuration_is_valid_and_names_the_deskconfig_tenants() -> None:
    config = load_config(default_config_path())
    assert {str(b.bot_id) for b in config.express_bots} == {
        "8dada2c8-67a6-4434-9dec-570d244e78ee",
        "3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69",
    }
    directory = Directory.from_config(config)
    assert [p.id for p in directory.leads("box-l1")] == ["lead-boris"]
    assert [p.id for p in directory.oncall("express", None)] == ["oncall-duty"]
    assert directory.email_relay("express") == "local"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (RELAY + person(role='"boss"'), "Invalid enum value 'boss' - at `$.people[0].role`"),
        (RELAY + person(colour='"red"'), "unknown field `colour`"),
        (RELAY + person(timezone='"Mars/Olympus"'), "people[anna].timezone: unknown time zone 'Mars/Olympus'"),
        (RELAY + person(shift='[{ days = ["mon"], start = "25:00", end = "19:00" }]'), "'25:00' is not HH:MM"),
        (person(addresses='{ email = { destination = "nowhere", address = "a@b" } }'), "no email account 'nowhere'"),
        (RELAY + person() + person(), "person 'anna' is listed twice"),
        (RELAY + '[[desks]]\ndesk_id = "express"\nemail_relay = "other"\n', "no smtp relay 'other'"),
        ("people = 3", "Expected `array`, got `int`"),
        ("[[people]\n", "not valid TOML"),
    ],
)
def test_a_broken_file_is_refused_with_where_and_what(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "notifications.toml")
    assert str(refused.value).startswith("notifications.toml: ")
    assert problem in str(refused.value)


def test_people_become_policy_persons_with_shifts_in_their_time_zone() -> None:
    shift = '[{ days = ["mon", "tue", "wed", "thu", "fri"], start = "09:00", end = "18:00" }]'
    address = '{ email = { destination = "main", address = "anna@example.test" } }'
    directory = Directory.from_config(
        parse_config(RELAY + person(timezone='"Asia/Yekaterinburg"', shift=shift, addresses=address))
    )
    anna = directory.person("anna")
    assert anna is not None and anna.role is Role.AGENT and anna.channels == (Channel.EMAIL,)
    assert anna.shift is not None
    assert anna.shift.is_open(datetime(2026, 11, 24, 5, 0, tzinfo=UTC))  # 10:00 in Yekaterinburg
    assert not anna.shift.is_open(datetime(2026, 11, 24, 14, 0, tzinfo=UTC))  # 19:00 there
    assert directory.name("anna") == "Anna" and directory.name("ghost") == "ghost"


def test_accounts_without_their_secret_are_left_out_not_fatal() -> None:
    config = load_config(default_config_path())
    channels = build_channels(config, {"TICKETFLOW_EXPRESS_CLIENT_BOT_SECRET": "s"})
    assert [type(c) for c in channels] == [ExpressChannel, Bitrix24Channel, EmailChannel, WebhookChannel]
    express = channels[0]
    assert isinstance(express, ExpressChannel)
    assert [str(a.id) for a in express.bot.bot_accounts] == ["8dada2c8-67a6-4434-9dec-570d244e78ee"]


def test_the_service_refuses_to_start_on_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "notifications.toml"
    broken.write_text(person(role='"boss"'), encoding="utf-8")
    env = {"TICKETFLOW_NOTIFICATIONS_CONFIG": str(broken), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "ticketflow.notifications"], env=env, capture_output=True, timeout=60)
    assert run.returncode == 2
    assert b"refusing to start" in run.stderr and b"people[0].role" in run.stderr
