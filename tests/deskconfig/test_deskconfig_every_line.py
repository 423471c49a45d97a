"""Break every key and every table of the packaged desk files in turn: the problem must name that line."""

from __future__ import annotations

import re

import pytest

from ticketflow.deskconfig import PACKAGED_DESKS, DeskConfigError, parse_desk

_KEY_LINE = re.compile(r"^(?P<key>[A-Za-z0-9_]+)\s*=\s*(?P<value>.*)$")
_HEADER_LINE = re.compile(r"^\[\[?[A-Za-z0-9_.]+\]\]?\s*(#.*)?$")
SOURCES = {path.name: path.read_text(encoding="utf-8") for path in sorted(PACKAGED_DESKS.glob("*.toml"))}


def _lines(pattern: re.Pattern[str]) -> list[tuple[str, int]]:
    return [
        (name, number)
        for name, text in SOURCES.items()
        for number, line in enumerate(text.splitlines(), start=1)
        if pattern.match(line)
    ]


def _first_problem(text: str, file: str) -> tuple[int, str, str]:
    with pytest.raises(DeskConfigError) as caught:
        parse_desk(text, file)
    problem = caught.value.problems[0]
    return problem.line, problem.field, problem.message


@pytest.mark.parametrize(("file", "number"), _lines(_KEY_LINE))
def test_a_wrong_type_is_reported_on_its_own_line(file: str, number: int) -> None:
    lines = SOURCES[file].splitlines()
    key = _KEY_LINE.match(lines[number - 1])
    assert key is not None
    lines[number - 1] = f"{key['key']} = {{ wrong = 1 }}"
    line, field, message = _first_problem("\n".join(lines), file)
    assert (line, field.rsplit(".", 1)[-1]) == (number, key["key"]), message
    assert "got `object`" in message


@pytest.mark.parametrize(("file", "number"), _lines(_HEADER_LINE))
def test_an_unknown_key_in_any_table_is_reported_on_its_own_line(file: str, number: int) -> None:
    lines = SOURCES[file].splitlines()
    lines.insert(number, "surprise_setting = 1")
    line, field, message = _first_problem("\n".join(lines), file)
    assert (line, field.rsplit(".", 1)[-1]) == (number + 1, "surprise_setting"), message
    assert "unknown field" in message
