"""Bar charts drawn on the server as SVG (pure): where people would rather look than read. Each bar keeps
its label and value, which the page also shows as the bar's title and in a table for screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT, GAP = 560, 120, 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float | None  # None: no figure that day (drawn as nothing, listed as "—")


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    top: float  # the value at the chart's top edge
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(points: Sequence[tuple[str, float | None]], top: float | None = None) -> Chart:
    """Bars for `points` (label, value), scaled so `top` (default: the largest value) reaches the top."""
    known = [v for _, v in points if v is not None]
    ceiling = top if top is not None else max(known, default=0.0)
    ceiling = ceiling or 1.0
    slot = WIDTH / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        height = 0.0 if value is None else HEIGHT * min(max(value, 0.0), ceiling) / ceiling
        bars.append(Bar(i * slot + GAP / 2, HEIGHT - height, max(slot - GAP, 1.0), height, label, value))
    return Chart(bars, ceiling)


def daily(days: Sequence[dict[str, object]], field: str, scale: float = 1.0) -> list[tuple[str, float | None]]:
    """(day, value) of one figure of the query API's per-day metrics (`scale`: e.g. seconds to minutes)."""
    points: list[tuple[str, float | None]] = []
    for day in days:
        value = day.get(field)
        points.append((str(day["day"]), None if value is None else float(value) * scale))  # type: ignore[arg-type]
    return points
