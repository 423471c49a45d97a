"""The application service: what a page shows (asked of the query API with the visitor's token) and what an
agent's action does: check the token acts on the ticket's desk, build the command with the token's agent as
its actor, check it against the ticket's current state with the lifecycle's own decider (a refusal is said
on the page and nothing is sent), send it on `ticket.commands` once per command id, wait (bounded) until the
ticket's stream holds its events, and answer with their position, so the page reads its own write."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka.errors import KafkaError

from ticketflow.dashboard.adapters.commands import CommandSender, TicketStreams
from ticketflow.dashboard.adapters.query_api import QueryApi, QueryRefused
from ticketflow.dashboard.domain.actions import ActionRefused, applied_position, command_for, command_id
from ticketflow.deskconfig import DeskRegistry
from ticketflow.eventstore.errors import RetryableStoreError
from ticketflow.lifecycle import IllegalTransition, decide, fold

BOARD_PARTS = ("backlog", "sla", "agents", "recent", "metrics", "history", "responses")
PERIODS = (7, 30, 90)  # days the lead may choose for the first-response distribution
DEFAULT_PERIOD = 30
HISTORY_HOURS = 48  # the backlog-by-hour plot
RECENT = 15  # tickets in the lead's "latest" list, per desk
REMEMBERED = 10_000  # command ids this process answers again without sending (a double click, a resent form)
POLL_S = 0.15


@dataclass
class Outcome:
    """What an action led to: a text key for the page, its values, the HTTP status, the position to read at."""

    key: str
    values: dict[str, str] = field(default_factory=dict)
    status: int = 200
    position: int | None = None


class Dashboard:
    def __init__(
        self,
        api: QueryApi,
        sender: CommandSender,
        streams: TicketStreams,
        wait_s: float,
        desks: DeskRegistry | None = None,
    ) -> None:
        self.api, self.sender, self.streams, self.wait_s, self.desks = api, sender, streams, wait_s, desks
        self._sent: OrderedDict[uuid.UUID, asyncio.Task[Outcome]] = OrderedDict()

    # --- pages ----------------------------------------------------------------------------------------

    async def me(self, token: str) -> dict[str, Any]:
        return await self.api.get(token, "/me")

    async def board(
        self,
        token: str,
        min_position: int | None = None,
        wait_ms: int | None = None,
        period_days: int = DEFAULT_PERIOD,
    ) -> dict[str, Any]:
        """The lead's page: per desk the token reads, the backlog (now and hour by hour), the SLA board, agents,
        the daily figures and the first-response distribution of the last `period_days` days, latest tickets."""
        me = await self.me(token)
        at = {"min_position": min_position, "wait_ms": wait_ms}
        desks = []
        for desk in me["reads"]:
            since = {"from": (self.today(desk) - timedelta(days=period_days - 1)).isoformat()}
            answers = await asyncio.gather(
                self.api.get(token, f"/desks/{desk}/backlog", **at),
                self.api.get(token, f"/desks/{desk}/sla-board", limit=20, **at),
                self.api.get(token, f"/desks/{desk}/agents", limit=50, **at),
                self.api.get(token, "/tickets", desk=desk, limit=RECENT, **at),
                self.api.get(token, f"/desks/{desk}/metrics", **at),  # the last 30 days
                self.api.get(token, f"/desks/{desk}/backlog-history", hours=HISTORY_HOURS, **at),
                self.api.get(token, f"/desks/{desk}/first-responses", **since, **at),
            )
            desks.append({"desk_id": desk, **dict(zip(BOARD_PARTS, answers, strict=True))})
        positions = [d[part]["position"] for d in desks for part in BOARD_PARTS]
        return {
            "me": me,
            "desks": desks,
            "position": min(positions, default=me["position"]),
            "period_days": period_days,
        }

    def today(self, desk_id: str) -> date:
        """Today in the desk's time zone (UTC for a desk this dashboard's configuration does not know)."""
        desk = self.desks.desks.get(desk_id) if self.desks else None
        return datetime.now(ZoneInfo(desk.timezone) if desk else UTC).date()

    async def ticket(
        self, token: str, ticket_id: uuid.UUID, min_position: int | None = None, wait_ms: int | None = None
    ) -> dict[str, Any]:
        me, answer = await asyncio.gather(
            self.me(token),
            self.api.get(token, f"/tickets/{ticket_id}", min_position=min_position, wait_ms=wait_ms),
        )
        ticket = answer["ticket"]
        return {
            "me": me,
            "ticket": ticket,
            "position": answer["position"],
            "can_act": ticket["desk_id"] in me["acts_on"],
        }

    async def changes(
        self, render: Callable[[int | None, int | None], Awaitable[tuple[int, str]]], wait_ms: int
    ) -> AsyncIterator[str]:
        """The page's fragment each time it changes: wait for the read models to pass the position last shown
        (bounded), render, and yield only what differs. A change on another desk renders the same fragment
        for this token and is never sent."""
        shown, position = "", None
        while True:
            start = time.monotonic()
            position, fragment = await render(
                None if position is None else position + 1, None if position is None else wait_ms
            )
            if fragment != shown:
                shown = fragment
                yield fragment
            elif time.monotonic() - start < 0.5:
                await asyncio.sleep(0.5)  # nothing new and the wait returned at once: do not spin

    # --- actions --------------------------------------------------------------------------------------

    async def act(self, token: str, ticket_id: uuid.UUID, action: str, form: Mapping[str, str]) -> Outcome:
        """Raises `ActionRefused` (the form, the token's scope) and `QueryRefused` (the token, the ticket)."""
        me, answer = await asyncio.gather(self.me(token), self.api.get(token, f"/tickets/{ticket_id}"))
        ticket = answer["ticket"]
        agent = me.get("agent_id")
        if not agent:
            raise ActionRefused("no_agent")
        if ticket["desk_id"] not in me["acts_on"]:
            raise ActionRefused("cannot_act", desk=ticket["desk_id"])
        command = command_for(action, ticket_id, agent, form, ticket.get("category"))
        cid = command_id(form)
        running = self._sent.get(cid)
        if running is None:
            running = asyncio.ensure_future(self._send_once(cid, agent, command))
            self._sent[cid] = running
            while len(self._sent) > REMEMBERED:
                self._sent.popitem(last=False)
        outcome = await asyncio.shield(running)
        if outcome.status >= 400:
            self._sent.pop(cid, None)  # nothing was sent: the same form may try again (the ticket may change)
        return outcome

    async def _send_once(self, cid: uuid.UUID, agent: str, command: Any) -> Outcome:
        try:
            return await self._send_and_follow(cid, agent, command)
        except RetryableStoreError as error:  # the store is away; the same form again is deduplicated by its id
            return Outcome("unavailable", {"reason": type(error).__name__}, 503)

    async def _send_and_follow(self, cid: uuid.UUID, agent: str, command: Any) -> Outcome:
        history = await self.streams.history(command.ticket_id)
        done = applied_position(history, cid)
        if done is not None:
            return Outcome("done", position=done)
        try:
            decide(command, fold(e.event for e in history))  # type: ignore[misc]
        except IllegalTransition as refused:
            return Outcome("refused_by_ticket", {"reason": str(refused)}, 409)
        try:
            await self.sender.send(cid, agent, command)
        except KafkaError as error:
            return Outcome("busy", {"reason": type(error).__name__}, 503)
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:
            done = applied_position(await self.streams.history(command.ticket_id), cid)
            if done is not None:
                return Outcome("done", position=done)
            await asyncio.sleep(POLL_S)
        return Outcome("pending", {"seconds": f"{self.wait_s:g}"}, 202)


__all__ = ["ActionRefused", "Dashboard", "Outcome", "QueryRefused"]
