"""The backlog's history and the first-response distribution, shaped for an answer (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from ticketflow.queries.domain.answers import BacklogSeries, ResponseBucket

NO_QUEUE = ""  # how the read model names "waiting for routing" (the answer: null)


def hours_ending(until: datetime, count: int) -> list[datetime]:
    """`count` UTC hour starts, oldest first, the last one the hour `until` falls in."""
    last = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [last - timedelta(hours=count - 1 - i) for i in range(count)]


def backlog_series(
    hours: Sequence[datetime], before: Mapping[str, int], moves: Iterable[tuple[str, datetime, int, int]]
) -> tuple[list[BacklogSeries], BacklogSeries]:
    """Per queue and in total: the backlog at the end of each hour (what it was before the first hour, plus
    every hour's entered - exited so far), and each hour's entered and exited."""
    index = {hour: i for i, hour in enumerate(hours)}
    entered: dict[str, list[int]] = {}
    exited: dict[str, list[int]] = {}
    for queue, hour, came_in, went_out in moves:
        i = index.get(hour.astimezone(UTC))
        if i is None:
            continue
        entered.setdefault(queue, [0] * len(hours))[i] += came_in
        exited.setdefault(queue, [0] * len(hours))[i] += went_out
    queues = sorted(set(before) | set(entered))
    series = []
    for queue in queues:
        came, went = entered.get(queue, [0] * len(hours)), exited.get(queue, [0] * len(hours))
        level, backlog = before.get(queue, 0), []
        for i in range(len(hours)):
            level += came[i] - went[i]
            backlog.append(level)
        if any(backlog) or any(came) or any(went):
            series.append(BacklogSeries(None if queue == NO_QUEUE else queue, backlog, came, went))
    total = BacklogSeries(
        None,
        [sum(s.backlog[i] for s in series) for i in range(len(hours))],
        [sum(s.entered[i] for s in series) for i in range(len(hours))],
        [sum(s.exited[i] for s in series) for i in range(len(hours))],
    )
    return series, total


def response_buckets(bounds: Sequence[int], counts: Mapping[int | None, int]) -> list[ResponseBucket]:
    """One bucket per bound (`counts` by PostgreSQL's width_bucket: bucket i holds bounds[i-1] <= s < bounds[i],
    the last one has no upper bound)."""
    return [
        ResponseBucket(low, bounds[i + 1] if i + 1 < len(bounds) else None, counts.get(i + 1, 0))
        for i, low in enumerate(bounds)
    ]
