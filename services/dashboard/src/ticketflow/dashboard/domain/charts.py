"""Bar charts drawn on the server as SVG (pure): where people would rather look than read. Each bar keeps
its label and value, which the page also shows as the bar's title and in a table for screen readers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

WIDTH, HEIGHT, GAP = 560, 120, 2
TICK_MARGIN = 16  # a label is centred under its bar, but never cut by the chart's edge


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float | None  # None: no figure that day (drawn as nothing, listed as "—")


@dataclass(frozen=True)
class Tick:
    x: float  # the middle of its bar
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    top: float  # the value at the chart's top edge
    width: int = WIDTH
    height: int = HEIGHT
    ticks: list[Tick] = field(default_factory=list)


def bar_chart(
    points: Sequence[tuple[str, float | None]], top: float | None = None, ticks: Mapping[int, str] | None = None
) -> Chart:
    """Bars for `points` (label, value), scaled so `top` (default: the largest value) reaches the top;
    `ticks`: labels written under some bars (by index)."""
    known = [v for _, v in points if v is not None]
    ceiling = top if top is not None else max(known, default=0.0)
    ceiling = ceiling or 1.0
    slot = WIDTH / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        height = 0.0 if value is None else HEIGHT * min(max(value, 0.0), ceiling) / ceiling
        bars.append(Bar(i * slot + GAP / 2, HEIGHT - height, max(slot - GAP, 1.0), height, label, value))
    shown = [
        Tick(min(max(bars[i].x + bars[i].width / 2, TICK_MARGIN), WIDTH - TICK_MARGIN), label)
        for i, label in sorted((ticks or {}).items())
        if i < len(bars)
    ]
    return Chart(bars, ceiling, ticks=shown)


def daily(days: Sequence[dict[str, object]], field: str, scale: float = 1.0) -> list[tuple[str, float | None]]:
    """(day, value) of one figure of the query API's per-day metrics (`scale`: e.g. seconds to minutes)."""
    points: list[tuple[str, float | None]] = []
    for day in days:
        value = day.get(field)
        points.append((str(day["day"]), None if value is None else float(value) * scale))  # type: ignore[arg-type]
    return points


def hourly(
    history: Mapping[str, Any], zone: tzinfo, series: Mapping[str, Any] | None = None
) -> list[tuple[str, float | None]]:
    """(the hour in the desk's time zone, tickets in the backlog at its end) of the query API's backlog history:
    the desk's total, or one queue's `series`."""
    levels = (series or history["total"])["backlog"]
    return [
        (datetime.fromisoformat(hour).astimezone(zone).strftime("%d.%m %H:00"), float(level))
        for hour, level in zip(history["hours"], levels, strict=True)
    ]


def every_nth_hour(points: Sequence[tuple[str, float | None]], n: int = 6) -> dict[int, str]:
    """Tick labels for an hourly chart: the clock hour ("14:00") of every `n`-th bar, counted from the last."""
    last = len(points) - 1
    return {i: points[i][0][-5:] for i in range(last, -1, -n)}
