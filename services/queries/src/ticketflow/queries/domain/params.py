"""Query parameters (pure): each route's parameters declared once, with how each is read and its JSON
Schema, so validation and the OpenAPI document cannot disagree. Anything a route does not declare, a
parameter given twice, or a value out of its range is a `BadRequest` naming the parameter."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any


class BadRequest(ValueError):
    """The request cannot be answered as asked (HTTP 400); `parameter` names the culprit when there is one."""

    def __init__(self, reason: str, parameter: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.parameter = reason, parameter


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any]
    read: Callable[[str], Any]
    default: Any = None
    explode: bool = True  # False: an array given as "a,b,c"

    def parse(self, raw: str) -> Any:
        if "\x00" in raw:  # PostgreSQL cannot hold U+0000 in text: no value containing it can match
            raise BadRequest(f"{self.name}: contains a NUL character (U+0000)", self.name)
        try:
            return self.read(raw)
        except BadRequest as problem:
            raise BadRequest(f"{self.name}: {problem.reason}", self.name) from None
        except ValueError as problem:
            raise BadRequest(f"{self.name}: {problem}", self.name) from None


@dataclass(frozen=True)
class Params:
    """The parameters one route takes."""

    params: tuple[Param, ...]
    by_name: dict[str, Param] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {p.name: p for p in self.params})

    def parse(self, items: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """The route's parameters from the query string's (name, value) pairs, defaults filled in."""
        seen: dict[str, str] = {}
        for name, raw in items:
            if name not in self.by_name:
                allowed = ", ".join(self.by_name) or "none"
                raise BadRequest(f"unknown query parameter {name!r}; this route takes: {allowed}", name)
            if name in seen:
                raise BadRequest(f"{name} is given more than once (give a list as a,b,c)", name)
            seen[name] = raw
        return {p.name: p.parse(seen[p.name]) if p.name in seen else p.default for p in self.params}


MAX_LIST = 50  # values in one list filter
MAX_TEXT = 200
_WORD = re.compile(r"\w+", re.UNICODE)


def integer(low: int, high: int) -> Callable[[str], int]:
    def read(raw: str) -> int:
        if not re.fullmatch(r"-?\d{1,19}", raw.strip()):
            raise BadRequest(f"{raw!r} is not a whole number")
        value = int(raw)
        if not low <= value <= high:
            raise BadRequest(f"{value} is outside {low}..{high}")
        return value

    return read


def one_of(choices: Sequence[str]) -> Callable[[str], str]:
    def read(raw: str) -> str:
        if raw not in choices:
            raise BadRequest(f"{raw!r} is not one of {', '.join(choices)}")
        return raw

    return read


def listed(choices: Sequence[str] | None = None, *, pattern: str = r"[^,]{1,200}") -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list (each value one of `choices`, or matching `pattern`), without repeats."""
    shape = re.compile(pattern)

    def read(raw: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(v.strip() for v in raw.split(",")))
        if not raw or any(not v for v in values):
            raise BadRequest("an empty value (a list is a,b,c)")
        if len(values) > MAX_LIST:
            raise BadRequest(f"more than {MAX_LIST} values")
        for value in values:
            if choices is not None and value not in choices:
                raise BadRequest(f"{value!r} is not one of {', '.join(choices)}")
            if choices is None and not shape.fullmatch(value):
                raise BadRequest(f"{value!r} is not a valid value")
        return values

    return read


def words(raw: str) -> tuple[str, ...]:
    """Text search: the words of the text (letters and digits in any script), each matched as a word start."""
    if len(raw) > MAX_TEXT:
        raise BadRequest(f"longer than {MAX_TEXT} characters")
    found = tuple(dict.fromkeys(w.lower() for w in _WORD.findall(raw)))
    if not found:
        raise BadRequest("no words to search for")
    return found[:20]


def day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{raw!r} is not a date (YYYY-MM-DD)") from None


def instant(raw: str) -> datetime:
    """An ISO 8601 date and time with its offset (Z or +03:00)."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{raw!r} is not a date and time (YYYY-MM-DDTHH:MM:SSZ)") from None
    if value.tzinfo is None:
        raise BadRequest(f"{raw!r} has no time zone (add Z or an offset such as +03:00)")
    if not 2000 <= value.astimezone(UTC).year <= 9998:
        raise BadRequest(f"{raw!r} is outside the years 2000..9998")
    return value


def text(max_length: int = MAX_TEXT) -> Callable[[str], str]:
    def read(raw: str) -> str:
        if not raw or len(raw) > max_length:
            raise BadRequest(f"must be 1..{max_length} characters")
        return raw

    return read


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": 1, "maxItems": MAX_LIST, "uniqueItems": True}


def list_param(name: str, description: str, choices: Sequence[str] | None = None) -> Param:
    item: dict[str, Any] = (
        {"type": "string", "enum": list(choices)} if choices else {"type": "string", "pattern": "^[^,]{1,200}$"}
    )
    return Param(name, f"{description} (a list: a,b,c)", array(item), listed(choices), (), explode=False)


def int_param(name: str, description: str, low: int, high: int, default: int | None) -> Param:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return Param(name, description, schema, integer(low, high), default)


MAX_POSITION = 2**62


def consistency_params(max_wait_ms: int) -> tuple[Param, ...]:
    """Every route's: wait (bounded) until the read models include the event at a global position."""
    return (
        int_param(
            "min_position",
            "answer once the read models include the event at this global position "
            "(from an append or an earlier answer's `position`)",
            0,
            MAX_POSITION,
            None,
        ),
        int_param(
            "wait_ms",
            "how long to wait for min_position before answering anyway (`reached`: false)",
            0,
            max_wait_ms,
            min(2000, max_wait_ms),
        ),
    )


def page_params(max_limit: int) -> tuple[Param, ...]:
    return (
        int_param("limit", "items per page", 1, max_limit, min(50, max_limit)),
        Param(
            "cursor",
            "where the previous page ended (its `next_cursor`), for the same filters and sort",
            {"type": "string", "maxLength": 1000},
            text(1000),
        ),
    )
