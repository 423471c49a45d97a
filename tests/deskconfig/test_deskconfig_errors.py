"""Given a desk file broken in one place, then the problem names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from desk_samples import MINIMAL_DESK, line_of

from ticketflow.cli.app import main
from ticketflow.deskconfig import DeskConfigError, Problem, load_desks, parse_desk


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(DeskConfigError) as caught:
        parse_desk(text, "acme.toml")
    return list(caught.value.problems)


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def test_the_minimal_desk_is_valid() -> None:
    desk = parse_desk(MINIMAL_DESK, "acme.toml")
    assert [track.id for track in desk.tracks] == ["general", "contract"]


def test_wrong_type() -> None:
    text = MINIMAL_DESK.replace("first_response_minutes = 60", 'first_response_minutes = "an hour"')
    problem = only_problem(text)
    assert (problem.line, problem.field) == (
        line_of(text, '"an hour"'),
        "sla_policies[1].first_response_minutes",
    )
    assert "Expected `int | null`, got `str`" in problem.message
    assert str(problem).startswith(f"acme.toml:{problem.line}: sla_policies[1].first_response_minutes: ")


def test_unknown_field_points_at_the_misspelt_key() -> None:
    text = MINIMAL_DESK.replace('fallback = "l1"', 'fallback = "l1"\nreasign_after_minutes = 5')
    problem = only_problem(text)
    assert (problem.line, problem.field) == (
        line_of(text, "reasign_after_minutes"),
        "queues[1].reasign_after_minutes",
    )
    assert "unknown field" in problem.message


def test_unknown_field_in_a_subtable_of_an_array_of_tables() -> None:
    text = MINIMAL_DESK.replace('fri = ["22:00-02:00"]', 'fri = ["22:00-02:00"]\nfriday = ["10:00-11:00"]')
    problem = only_problem(text)
    assert (problem.line, problem.field) == (line_of(text, "friday ="), "calendars[1].weekly.friday")


def test_missing_field_points_at_its_table() -> None:
    text = MINIMAL_DESK.replace('name = "Contract"\n', "")
    problem = only_problem(text)
    assert (problem.line, problem.field) == (line_of(text, "[[tracks]]", 2), "tracks[1].name")
    assert "missing required field `name`" in problem.message


def test_bad_time_names_the_interval() -> None:
    text = MINIMAL_DESK.replace('tue = ["09:00-18:00"]', 'tue = ["09:00-25:00"]')
    problem = only_problem(text)
    assert (problem.line, problem.field) == (line_of(text, "25:00"), "calendars[0].weekly.tue[0]")
    assert "invalid time '25:00'" in problem.message


def test_overlapping_intervals() -> None:
    text = MINIMAL_DESK.replace('"09:00-13:00", "14:00-18:00"', '"09:00-13:00", "12:00-18:00"')
    problem = only_problem(text)
    assert (problem.line, problem.field) == (line_of(text, "12:00-18:00"), "calendars[0].weekly.mon")
    assert "overlap" in problem.message


def test_unknown_calendar_reference() -> None:
    text = MINIMAL_DESK.replace('calendar = "night"', 'calendar = "nights"')
    problem = only_problem(text)
    assert (problem.line, problem.field) == (line_of(text, '"nights"'), "tracks[1].calendar")
    assert problem.message == "unknown calendar 'nights'"


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        (
            'track = "contract"\npriority = "low"',
            'track = "contrat"\npriority = "low"',
            "sla_policies[3].track",
            "unknown track 'contrat'",
        ),
        (
            'id = "l1"\ntrack = "general"',
            'id = "l1"\ntrack = "generl"',
            "queues[0].track",
            "unknown track 'generl'",
        ),
        ('queue = "l2"', 'queue = "l3"', "routing.rules[0].queue", "unknown queue 'l3'"),
        (
            'fallback_queue = "l1"',
            'fallback_queue = "none"',
            "routing.fallback_queue",
            "unknown queue 'none'",
        ),
        ('fallback = "l1"', 'fallback = "l9"', "queues[1].fallback", "unknown (or own) queue 'l9'"),
        (
            'default_track = "general"',
            'default_track = "sales"',
            "platforms.generic[0].default_track",
            "unknown track 'sales'",
        ),
        (
            'api_key_env = "ACME_INTAKE_KEY"',
            'api_key_env = "sk-live-12345"',
            "platforms.generic[0].api_key_env",
            "'sk-l'... is not an environment variable name (keep secrets out of files)",
        ),
        (
            'locales = ["ru"]',
            'locales = ["de"]',
            "notifications.locales[0]",
            "locale 'de' is not one of languages",
        ),
        (
            'holiday_country = "RU"',
            'holiday_country = "XX"',
            "calendars[0].holiday_country",
            "unknown holiday country 'XX'",
        ),
    ],
)
def test_cross_references_are_checked(old: str, new: str, field: str, message: str) -> None:
    assert old in MINIMAL_DESK
    text = MINIMAL_DESK.replace(old, new)
    problem = problems_of(text)[0]  # (a policy on an unknown track also leaves a priority uncovered)
    assert (problem.field, problem.message) == (field, message)
    changed = next(n for o, n in zip(old.splitlines(), new.splitlines(), strict=True) if o != n)
    assert problem.line == line_of(text, changed)


def test_a_track_without_sla_takes_no_policy_and_an_sla_track_needs_every_priority() -> None:
    text = MINIMAL_DESK.replace('track = "contract"\npriority = "low"', 'track = "general"\npriority = "low"')
    problems = {(p.field, p.message) for p in problems_of(text)}
    assert problems == {
        ("sla_policies[3].track", "track 'general' has sla = false and takes no SLA policy"),
        ("tracks[1].sla", "no SLA policy for priority low"),
    }


def test_warning_ladder_must_be_ascending_fractions() -> None:
    text = MINIMAL_DESK.replace("first_response_minutes = 30", "first_response_minutes = 30\nwarnings = [0.9, 0.5]")
    problem = only_problem(text)
    assert (problem.field, problem.line) == ("sla_policies[0].warnings", line_of(text, "warnings"))


def test_a_calendar_with_no_working_time_is_refused() -> None:
    text = MINIMAL_DESK.replace('fri = ["22:00-02:00"]', "").replace(
        'id = "night"', 'id = "night"\nmoved_working_days = false'
    )
    problem = only_problem(text)
    assert (problem.field, problem.line) == ("calendars[1]", line_of(text, "[[calendars]]", 2))
    assert "no working time" in problem.message


def test_toml_syntax_errors_carry_the_line() -> None:
    text = MINIMAL_DESK.replace('name = "General"', 'name = "General')
    problem = only_problem(text)
    assert problem.line == line_of(text, 'name = "General')
    assert problem.message.startswith("TOML: ")


def test_desk_ids_and_tenants_must_be_unique_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(MINIMAL_DESK, encoding="utf-8")
    (tmp_path / "b.toml").write_text(MINIMAL_DESK.replace('id = "acme"', 'id = "acme2"'), encoding="utf-8")
    (tmp_path / "c.toml").write_text(MINIMAL_DESK, encoding="utf-8")
    with pytest.raises(DeskConfigError) as caught:
        load_desks(tmp_path)
    messages = [str(problem) for problem in caught.value.problems]
    assert any("c.toml:1: id: desk id 'acme' is also used by" in m for m in messages)
    assert any("b.toml:1: platforms.generic: generic tenant 'acme-helpdesk' also belongs" in m for m in messages)


def test_check_command_lists_problems_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = MINIMAL_DESK.replace('tue = ["09:00-18:00"]', 'tue = ["09:00-25:00"]')
    (tmp_path / "acme.toml").write_text(broken, encoding="utf-8")
    assert main(["desks", "check", str(tmp_path)]) == 1
    expected = f"{tmp_path / 'acme.toml'}:{line_of(broken, '25:00')}: calendars[0].weekly.tue[0]: invalid time"
    assert expected in capsys.readouterr().err


def test_check_command_accepts_a_valid_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "acme.toml").write_text(MINIMAL_DESK, encoding="utf-8")
    assert main(["desks", "check", str(tmp_path)]) == 0
    assert "ok: acme" in capsys.readouterr().out


def test_a_queue_lead_is_read_and_must_be_a_staff_id() -> None:
    led = MINIMAL_DESK.replace('id = "l1"\ntrack = "general"', 'id = "l1"\ntrack = "general"\nlead = "lead-boris"')
    assert parse_desk(led, "acme.toml").queues[0].lead == "lead-boris"
    text = led.replace('lead = "lead-boris"', 'lead = "Boris Kuznetsov"')
    problem = only_problem(text)
    assert (problem.line, problem.field) == (line_of(text, "Boris Kuznetsov"), "queues[0].lead")
    assert problem.message.startswith("'Boris Kuznetsov' is not a staff id")


def test_a_queue_that_reassigns_needs_a_lead_to_tell() -> None:
    text = MINIMAL_DESK.replace('fallback = "l1"', 'fallback = "l1"\nreassign_after_minutes = 30')
    problem = only_problem(text)
    assert (problem.line, problem.field) == (
        line_of(text, "reassign_after_minutes"),
        "queues[1].reassign_after_minutes",
    )
    assert "tells the queue's lead: set `lead`" in problem.message
    assert parse_desk(text.replace("reassign_after_minutes = 30", 'reassign_after_minutes = 30\nlead = "lead-b"'))


def test_a_queue_nobody_works_has_no_lead() -> None:
    text = MINIMAL_DESK.replace('fallback = "l1"', 'fallback = "l1"\nstrategy = "none"\nlead = "lead-boris"')
    problem = only_problem(text)
    assert (problem.line, problem.field) == (line_of(text, 'lead = "lead-boris"'), "queues[1].lead")


OUT_OF_SCOPE = """
[[preflight.scope]]
id = "custom_development"
in_scope = false
keywords_ru = ["разработка под заказ"]
title_ru = "разработка под заказ"
title_en = "custom development"
refer_to = "partners"

[[referrals]]
id = "partners"
name_ru = "партнёры"
name_en = "partners"
url = "https://partners.example.ru/"
"""


def test_an_out_of_scope_category_refers_to_a_declared_referral_named_in_both_languages() -> None:
    good = MINIMAL_DESK.replace("[notifications]", OUT_OF_SCOPE + "\n[notifications]")
    desk = parse_desk(good, "acme.toml")
    assert desk.referrals[0].name_ru == "партнёры" and desk.preflight.scope[0].refer_to == "partners"
    unknown = only_problem(good.replace('refer_to = "partners"', 'refer_to = "bitrix24_partners"'))
    assert (unknown.field, unknown.message) == (
        "preflight.scope[0].refer_to", "'bitrix24_partners' is not one of [[referrals]]",
    )  # fmt: skip
    untitled = only_problem(good.replace('title_en = "custom development"\n', ""))
    assert "title_ru and title_en" in untitled.message
    no_address = only_problem(good.replace('url = "https://partners.example.ru/"', 'url = "partners.example.ru"'))
    assert no_address.field == "referrals[0].url"
