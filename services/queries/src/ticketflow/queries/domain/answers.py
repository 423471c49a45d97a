"""What the API answers (msgspec Structs: encoded as they are, and the OpenAPI document's schemas).

Every answer from a read model carries `position`: the read models it was read from include every event
of the global log up to that position in commit order (a lower bound: the answer may include more), and
`reached`: whether the `min_position` asked for was reached in time (null when none was asked for)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import msgspec

from ticketflow.contracts.views import TicketDetail


class Answer(msgspec.Struct, kw_only=True):
    position: int
    reached: bool | None = None


class TicketRow(msgspec.Struct):
    ticket_id: uuid.UUID
    number: str
    desk_id: str
    track_id: str
    organisation_id: str
    requester_id: str
    status: str
    priority: str
    category: str | None
    queue_id: str | None
    assignee: str | None
    subject: str
    opened_at: datetime
    updated_at: datetime
    sla_state: str
    sla_due_at: datetime | None
    feature_outcome: str | None
    excluded_from_metrics: bool


class TicketPage(Answer, kw_only=True):
    tickets: list[TicketRow]
    next_cursor: str | None


class TicketAnswer(Answer, kw_only=True):
    ticket: TicketDetail


class AgeBuckets(msgspec.Struct):
    """Tickets by how long ago they were opened (wall-clock time)."""

    under_1h: int
    from_1h_to_4h: int
    from_4h_to_24h: int
    from_1d_to_3d: int
    from_3d_to_7d: int
    over_7d: int


class BacklogRow(msgspec.Struct):
    queue_id: str | None  # null: ready, waiting to be routed
    priority: str
    tickets: int
    unassigned: int
    oldest_opened_at: datetime
    ages: AgeBuckets


class Backlog(Answer, kw_only=True):
    desk_id: str
    total: int
    queues: list[BacklogRow]


class BoardClock(msgspec.Struct):
    ticket_id: uuid.UUID
    number: str
    target: str
    priority: str
    queue_id: str | None
    assignee: str | None
    state: str
    deadline: datetime | None
    breached: bool
    warning_level: float
    started_at: datetime
    paused_at: datetime | None
    policy_id: str
    target_seconds: int


class BoardSection(msgspec.Struct):
    count: int  # all clocks in the section (the list shows the first `limit`, most urgent first)
    clocks: list[BoardClock]


class SlaBoard(Answer, kw_only=True):
    desk_id: str
    now: datetime
    within_minutes: int
    at_risk: BoardSection  # running, not breached, due within `within_minutes` business minutes
    breached: BoardSection  # pending clocks whose deadline passed
    paused: BoardSection  # clocks paused while waiting on the customer


class AgentLoad(msgspec.Struct):
    agent_id: str
    status: str
    capacity: int
    assigned: int  # this desk's tickets assigned, in progress or waiting on the customer
    queues: list[str]
    skills: list[str]
    languages: list[str]
    updated_at: datetime


class AgentPage(Answer, kw_only=True):
    desk_id: str
    agents: list[AgentLoad]
    next_cursor: str | None


class DayMetrics(msgspec.Struct):
    day: date
    opened: int  # tickets counted (referred, duplicate and refused ones are not)
    excluded: int  # referred, duplicate or refused
    resolved: int
    first_response_p50_s: float | None  # business seconds
    first_response_p90_s: float | None
    resolution_p50_s: float | None
    resolution_p90_s: float | None
    sla_attainment_percent: float | None  # targets met without a breach, of the targets met or breached
    breaches: int
    reopen_rate_percent: float | None  # reopened, of the tickets resolved


class Metrics(Answer, kw_only=True):
    desk_id: str
    first_day: date
    last_day: date
    days: list[DayMetrics]


class BacklogSeries(msgspec.Struct):
    """One queue's backlog hour by hour (each list aligned with `BacklogHistory.hours`)."""

    queue_id: str | None  # null: ready, waiting to be routed (in `queues`); every queue listed (in `total`)
    backlog: list[int]  # tickets in the backlog at the end of the hour
    entered: list[int]  # tickets that came into the backlog during the hour
    exited: list[int]  # tickets that left it (resolved, merged, routed elsewhere, ...)


class BacklogHistory(Answer, kw_only=True):
    desk_id: str
    hours: list[datetime]  # the start of each UTC hour, oldest first, from the events' own times
    queues: list[BacklogSeries]  # every queue with a ticket in its backlog during the hours (or before)
    total: BacklogSeries


class ResponseBucket(msgspec.Struct):
    from_seconds: int  # business seconds, inclusive
    to_seconds: int | None  # exclusive; null: no upper bound
    tickets: int


class FirstResponses(Answer, kw_only=True):
    """How long counted tickets opened in the days waited for their first agent reply, in business time."""

    desk_id: str
    first_day: date
    last_day: date
    responded: int
    not_responded: int  # counted tickets without a first reply (yet), or without business time (no calendar)
    buckets: list[ResponseBucket]


class Organisation(msgspec.Struct):
    organisation_id: str
    label: str  # the eXpress bot's host, the Bitrix24 portal's domain, or the tenant id
    tickets: int
    open: int
    resolved: int
    feature_requests: int
    in_sprint: int
    planned: int
    declined: int


class Organisations(Answer, kw_only=True):
    desk_id: str
    organisations: list[Organisation]


class RegisterRow(msgspec.Struct):
    ticket_id: uuid.UUID
    number: str
    requester_id: str
    requester_name: str
    subject: str
    category: str | None
    status: str
    priority: str
    assignee: str | None
    opened_at: datetime
    updated_at: datetime
    feature_outcome: str | None
    feature_reason: str
    outcome_by: str | None
    outcome_at: datetime | None


class RegisterPage(Answer, kw_only=True):
    desk_id: str
    organisation_id: str
    tickets: list[RegisterRow]
    next_cursor: str | None


class Me(Answer, kw_only=True):
    name: str
    agent_id: str | None
    reads: list[str]
    acts_on: list[str]


class ReadModelPosition(msgspec.Struct):
    position: int
    transaction_id: str


class Positions(Answer, kw_only=True):
    read_models: dict[str, ReadModelPosition]


class Error(msgspec.Struct, omit_defaults=True):
    error: str
    parameter: str | None = None
