"""The application service: answer a principal's query from the read models. Each answer: check the desk is
the principal's to read, wait (bounded) for the position asked for, note the read models' position, read,
shape the answer. Nothing here writes.

Agents act through the dashboard service (docs/dashboard.md), which reads `/v1/me` with the agent's token
and sends the command with `principal.agent_id` as its actor; this service stays read-only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from ticketflow.contracts.ids import ticket_number
from ticketflow.deskconfig import Desk, DeskRegistry
from ticketflow.queries.adapters import boards, reports, tickets
from ticketflow.queries.adapters.checkpoints import Checkpoints
from ticketflow.queries.domain import answers as a
from ticketflow.queries.domain import cursor, history, risk
from ticketflow.queries.domain.params import BadRequest
from ticketflow.queries.domain.routes import NO_QUEUE, TICKET_SORTS
from ticketflow.queries.domain.tokens import Principal

READ_MODELS = (
    "tickets",
    "queue_backlog",
    "sla_board",
    "agent_load",
    "desk_metrics",
    "organisation_register",
    "backlog_history",
)
MAX_DAYS = 366
Aware = Annotated[datetime, msgspec.Meta(tz=True)]
_KINDS: dict[str, Any] = {"datetime": Aware, "int": int}


class Forbidden(Exception):
    """The token may not read this desk (HTTP 403)."""


class NotFound(Exception):
    """No such desk, ticket or organisation for this token (HTTP 404)."""


class RawTicketAnswer(a.Answer, kw_only=True):
    """`TicketAnswer` with the stored document passed through as it is (never decoded and encoded again)."""

    ticket: msgspec.Raw


class Queries:
    def __init__(self, pool: asyncpg.Pool, desks: DeskRegistry, checkpoints: Checkpoints) -> None:
        self.pool, self.desks, self.checkpoints = pool, desks, checkpoints
        self.labels = organisation_labels(desks)

    # --- scope and consistency ------------------------------------------------------------------------

    def desk(self, principal: Principal, desk_id: str) -> Desk:
        if desk_id not in self.desks.desks:
            raise NotFound(f"no desk {desk_id!r}")
        if not principal.can_read(desk_id):
            raise Forbidden(f"this token does not read desk {desk_id!r}")
        return self.desks.desk(desk_id)

    def readable(self, principal: Principal, asked: Sequence[str]) -> tuple[str, ...]:
        for desk_id in asked:
            self.desk(principal, desk_id)
        return tuple(sorted(asked or principal.reads))

    async def consistent(self, names: tuple[str, ...], params: dict[str, Any]) -> tuple[int, bool | None]:
        """Wait for `min_position` (if asked, at most `wait_ms`), then the position the read starts from."""
        reached = None
        if params["min_position"] is not None:
            reached = await self.checkpoints.wait_for(names, params["min_position"], params["wait_ms"] / 1000)
        return self.checkpoints.current(names).position, reached

    # --- tickets --------------------------------------------------------------------------------------

    async def tickets(self, principal: Principal, p: dict[str, Any]) -> a.TicketPage:
        where = tickets.TicketFilter(
            self.readable(principal, p["desk"]),
            p["status"],
            p["queue"],
            p["assignee"],
            p["priority"],
            p["sla_state"],
            p["category"],
            p["organisation"],
            p["q"] or (),
        )
        sort = p["sort"]
        issued = cursor.fingerprint(
            "tickets",
            p["desk"],
            where.statuses,
            where.queues,
            where.assignees,
            where.priorities,
            where.sla_states,
            where.categories,
            where.organisations,
            where.words,
            sort,
        )
        after = None
        if p["cursor"] is not None:
            value, last = cursor.decode(p["cursor"], issued, (_KINDS[TICKET_SORTS[sort][2]], uuid.UUID))
            after = (value, last)
        position, reached = await self.consistent(("tickets",), p)
        rows = await tickets.ticket_page(self.pool, where, sort, after, p["limit"])
        page = [ticket_row(r) for r in rows[: p["limit"]]]
        following = None
        if len(rows) > p["limit"]:
            last_row = rows[p["limit"] - 1]
            following = cursor.encode(issued, (last_row["sort_key"], last_row["ticket_id"]))
        return a.TicketPage(position=position, reached=reached, tickets=page, next_cursor=following)

    async def ticket(self, principal: Principal, ticket_id: uuid.UUID, p: dict[str, Any]) -> RawTicketAnswer:
        position, reached = await self.consistent(("tickets",), p)
        document = await tickets.ticket_document(self.pool, ticket_id, sorted(principal.reads))
        if document is None:
            raise NotFound(f"no ticket {ticket_id} in the desks this token reads")
        return RawTicketAnswer(position=position, reached=reached, ticket=msgspec.Raw(document))

    # --- boards ---------------------------------------------------------------------------------------

    async def backlog(self, principal: Principal, desk_id: str, p: dict[str, Any]) -> a.Backlog:
        self.desk(principal, desk_id)
        position, reached = await self.consistent(("queue_backlog",), p)
        rows = await boards.backlog(self.pool, desk_id, datetime.now(UTC), p["queue"], p["priority"])
        queues = [
            a.BacklogRow(
                r["queue_id"],
                r["priority"],
                r["tickets"],
                r["unassigned"],
                r["oldest"],
                a.AgeBuckets(r["under_1h"], r["h1_4"], r["h4_24"], r["d1_3"], r["d3_7"], r["over_7d"]),
            )
            for r in rows
        ]
        return a.Backlog(
            position=position, reached=reached, desk_id=desk_id, total=sum(q.tickets for q in queues), queues=queues
        )

    async def sla_board(self, principal: Principal, desk_id: str, p: dict[str, Any]) -> a.SlaBoard:
        self.desk(principal, desk_id)
        now = datetime.now(UTC)
        cutoffs = risk.cutoffs(self.desks, desk_id, now, p["within"])
        position, reached = await self.consistent(("sla_board",), p)
        sections, counts = await boards.sla_board(
            self.pool, desk_id, p["limit"], cutoffs, p["queue"], p["assignee"], p["priority"]
        )
        shown = {name: a.BoardSection(counts[name], [board_clock(r) for r in rows]) for name, rows in sections.items()}
        return a.SlaBoard(
            position=position,
            reached=reached,
            desk_id=desk_id,
            now=now,
            within_minutes=p["within"],
            at_risk=shown["at_risk"],
            breached=shown["breached"],
            paused=shown["paused"],
        )

    async def agents(self, principal: Principal, desk_id: str, p: dict[str, Any]) -> a.AgentPage:
        desk = self.desk(principal, desk_id)
        issued = cursor.fingerprint("agents", desk_id, p["status"])
        after = cursor.decode(p["cursor"], issued, (str,))[0] if p["cursor"] is not None else ""
        position, reached = await self.consistent(("agent_load",), p)
        queues = [queue.id for queue in desk.queues]
        rows = await boards.agents(self.pool, desk_id, queues, p["status"], after, p["limit"] + 1)
        shown = [agent_load(r) for r in rows[: p["limit"]]]
        following = cursor.encode(issued, (shown[-1].agent_id,)) if len(rows) > p["limit"] else None
        return a.AgentPage(position=position, reached=reached, desk_id=desk_id, agents=shown, next_cursor=following)

    @staticmethod
    def days(desk: Desk, p: dict[str, Any]) -> tuple[date, date]:
        """The days asked for (`from`, `to`): by default the last 30, today in the desk's time zone."""
        last: date = p["to"] or datetime.now(ZoneInfo(desk.timezone)).date()
        first: date = p["from"] or last - timedelta(days=29)
        if first > last:
            raise BadRequest(f"from ({first}) is after to ({last})", "from")
        if (last - first).days >= MAX_DAYS:
            raise BadRequest(f"at most {MAX_DAYS} days at a time", "from")
        return first, last

    # --- reports --------------------------------------------------------------------------------------

    async def metrics(self, principal: Principal, desk_id: str, p: dict[str, Any]) -> a.Metrics:
        desk = self.desk(principal, desk_id)
        first, last = self.days(desk, p)
        position, reached = await self.consistent(("desk_metrics",), p)
        found = {r["day"]: day_metrics(r) for r in await reports.metrics(self.pool, desk_id, first, last)}
        days = [
            found.get(d) or empty_day(d) for d in (first + timedelta(days=i) for i in range((last - first).days + 1))
        ]
        return a.Metrics(position=position, reached=reached, desk_id=desk_id, first_day=first, last_day=last, days=days)

    async def backlog_history(self, principal: Principal, desk_id: str, p: dict[str, Any]) -> a.BacklogHistory:
        self.desk(principal, desk_id)
        hours = history.hours_ending(p["until"] or datetime.now(UTC), p["hours"])
        queues = [history.NO_QUEUE if q == NO_QUEUE else q for q in p["queue"]]
        position, reached = await self.consistent(("backlog_history",), p)
        before, moves = await boards.backlog_hours(self.pool, desk_id, hours[0], hours[-1], queues)
        series, total = history.backlog_series(
            hours,
            {r["queue_id"]: r["backlog"] for r in before},
            ((r["queue_id"], r["hour"], r["entered"], r["exited"]) for r in moves),
        )
        return a.BacklogHistory(
            position=position, reached=reached, desk_id=desk_id, hours=hours, queues=series, total=total
        )

    async def first_responses(self, principal: Principal, desk_id: str, p: dict[str, Any]) -> a.FirstResponses:
        desk = self.desk(principal, desk_id)
        first, last = self.days(desk, p)
        position, reached = await self.consistent(("desk_metrics",), p)
        counts = await reports.first_responses(self.pool, desk_id, first, last)
        buckets = history.response_buckets(reports.RESPONSE_BOUNDS, counts)
        return a.FirstResponses(
            position=position,
            reached=reached,
            desk_id=desk_id,
            first_day=first,
            last_day=last,
            responded=sum(b.tickets for b in buckets),
            not_responded=counts.get(None, 0),
            buckets=buckets,
        )

    async def organisations(self, principal: Principal, desk_id: str, p: dict[str, Any]) -> a.Organisations:
        self.desk(principal, desk_id)
        position, reached = await self.consistent(("organisation_register",), p)
        rows = await reports.organisations(self.pool, desk_id)
        shown = [
            a.Organisation(
                r["organisation_id"],
                self.labels.get((desk_id, r["organisation_id"]), r["organisation_id"]),
                *(
                    r[c]
                    for c in ("tickets", "open", "resolved", "feature_requests", "in_sprint", "planned", "declined")
                ),
            )
            for r in rows
        ]
        return a.Organisations(position=position, reached=reached, desk_id=desk_id, organisations=shown)

    async def register(
        self, principal: Principal, desk_id: str, organisation: str, p: dict[str, Any]
    ) -> a.RegisterPage:
        self.desk(principal, desk_id)
        filters = (p["status"], p["feature_outcome"], p["category"])
        issued = cursor.fingerprint("register", desk_id, organisation, *filters)
        after = cursor.decode(p["cursor"], issued, (Aware, uuid.UUID)) if p["cursor"] is not None else None
        position, reached = await self.consistent(("organisation_register",), p)
        if not await reports.has_organisation(self.pool, desk_id, organisation):
            raise NotFound(f"no organisation {organisation!r} in desk {desk_id!r}")
        rows = await reports.register(self.pool, desk_id, organisation, filters, after, p["limit"] + 1)  # type: ignore[arg-type]
        shown = [register_row(r) for r in rows[: p["limit"]]]
        following = None
        if len(rows) > p["limit"]:
            following = cursor.encode(issued, (shown[-1].opened_at, shown[-1].ticket_id))
        return a.RegisterPage(
            position=position,
            reached=reached,
            desk_id=desk_id,
            organisation_id=organisation,
            tickets=shown,
            next_cursor=following,
        )

    # --- who and where --------------------------------------------------------------------------------

    def me(self, principal: Principal) -> a.Me:
        return a.Me(
            position=self.checkpoints.current(READ_MODELS).position,
            name=principal.name,
            agent_id=principal.agent_id,
            reads=sorted(principal.reads),
            acts_on=sorted(principal.acts_on),
        )

    def positions(self) -> a.Positions:
        known = {name: self.checkpoints.current((name,)) for name in READ_MODELS}
        shown = {name: a.ReadModelPosition(c.position, str(c.transaction_id)) for name, c in known.items()}
        return a.Positions(position=self.checkpoints.current(READ_MODELS).position, read_models=shown)


# --- rows to answers ------------------------------------------------------------------------------------


def ticket_row(r: asyncpg.Record) -> a.TicketRow:
    return a.TicketRow(
        r["ticket_id"],
        ticket_number(r["ticket_id"]),
        r["desk_id"],
        r["track_id"],
        r["organisation_id"],
        r["requester_id"],
        r["status"],
        r["priority"],
        r["category"],
        r["queue_id"],
        r["assignee"],
        r["subject"],
        r["opened_at"],
        r["updated_at"],
        r["sla_state"],
        r["sla_due_at"],
        r["feature_outcome"],
        r["excluded"],
    )


def board_clock(r: asyncpg.Record) -> a.BoardClock:
    return a.BoardClock(
        r["ticket_id"],
        ticket_number(r["ticket_id"]),
        r["target"],
        r["priority"],
        r["queue_id"],
        r["assignee"],
        r["state"],
        r["deadline"],
        r["breached"],
        r["warning_level"],
        r["started_at"],
        r["paused_at"],
        r["policy_id"],
        r["target_seconds"],
    )


_strings = msgspec.json.Decoder(list[str])


def agent_load(r: asyncpg.Record) -> a.AgentLoad:
    return a.AgentLoad(
        r["agent_id"],
        r["status"],
        r["capacity"],
        r["assigned"],
        _strings.decode(r["queues"]),
        _strings.decode(r["skills"]),
        _strings.decode(r["languages"]),
        r["updated_at"],
    )


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def day_metrics(r: asyncpg.Record) -> a.DayMetrics:
    return a.DayMetrics(
        r["day"],
        r["opened"],
        r["excluded"],
        r["resolved"],
        r["fr50"],
        r["fr90"],
        r["res50"],
        r["res90"],
        _percent(r["attained"], r["attained"] + r["missed"]),
        r["breaches"],
        _percent(r["reopened"], r["ever_resolved"]),
    )


def empty_day(day: date) -> a.DayMetrics:
    return a.DayMetrics(day, 0, 0, 0, None, None, None, None, None, 0, None)


def register_row(r: asyncpg.Record) -> a.RegisterRow:
    return a.RegisterRow(
        r["ticket_id"],
        ticket_number(r["ticket_id"]),
        r["requester_id"],
        r["requester_name"],
        r["subject"],
        r["category"],
        r["status"],
        r["priority"],
        r["assignee"],
        r["opened_at"],
        r["updated_at"],
        r["feature_outcome"],
        r["feature_reason"],
        r["outcome_by"],
        r["outcome_at"],
    )


def organisation_labels(desks: DeskRegistry) -> dict[tuple[str, str], str]:
    """A name people know for each configured organisation: the eXpress bot's host, the portal's domain."""
    labels: dict[tuple[str, str], str] = {}
    for desk_id, desk in desks.desks.items():
        for bot in desk.platforms.express:
            labels[(desk_id, f"express:{bot.bot_id}")] = bot.host
        for app in desk.platforms.bitrix24:
            for member in app.member_ids:
                labels[(desk_id, f"bitrix24:{member}")] = (
                    app.portal_domains[0] if len(app.portal_domains) == 1 else member
                )
    return labels
