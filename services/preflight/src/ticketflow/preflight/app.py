"""Preflight's application service: gather the findings for a ticket (portal checks, scope, duplicates,
feature request), let the pure domain pick one command, and store it through the lifecycle decider.

Idempotency: each handled event is claimed in `processed_events` (consumer "preflight") in the same
transaction as the lifecycle events and the duplicate-index row it causes, and the command's event ids
derive from the handled event's id. A redelivered TicketOpened, or the same /recheck message again,
changes nothing. The network checks run before that transaction, so no database transaction is held
open while a portal is slow.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import EventEnvelope, EventMetadata
from ticketflow.contracts.ids import ticket_stream
from ticketflow.contracts.values import ChatRef, CheckEvidence
from ticketflow.deskconfig import Desk, DeskRegistry, Track
from ticketflow.eventstore import ConcurrencyError, EventStore
from ticketflow.eventstore.commands import execute
from ticketflow.eventstore.tracking import already_processed, first_time
from ticketflow.lifecycle import IllegalTransition, Status, decide, evolve, fold, initial_state
from ticketflow.messaging import tracing
from ticketflow.preflight.adapters.checks import (
    CheckCache,
    ChecksConfig,
    PortalAsk,
    PortalTarget,
    Resolver,
    cache_key,
    run_portal_checks,
)
from ticketflow.preflight.adapters.open_tickets import find_duplicates, forget_ticket, record_open_ticket
from ticketflow.preflight.adapters.stable_versions import StableVersionsFeed
from ticketflow.preflight.domain import outcome as domain
from ticketflow.preflight.domain.desk_rules import DeskScope, merge_scope, portal_url_for, scope_for
from ticketflow.preflight.domain.duplicates import TicketText, sort_duplicates
from ticketflow.preflight.domain.eligibility import check_eligibility, effective_roles
from ticketflow.preflight.domain.feature_requests import assess_feature_request

log = logging.getLogger("ticketflow.preflight")
CONSUMER = "preflight"
_CLOSING = (e.TicketClosed, e.TicketMerged, e.TicketRefused, e.TicketReferred, e.DuplicateSuspected)


class Rejected(Exception):
    """Input preflight cannot act on (unknown ticket, desk or track): a dead letter with this reason."""


@dataclass
class Preflight:
    """`portal_call(member_id, method)`: a REST call through the portal's install (`PortalRest.call`: the
    license and updates checks; None: those are not checked); `feeds`: each desk's stable-versions feed
    (default: its checks configuration's versions)."""

    store: EventStore
    desks: DeskRegistry
    resolver: Resolver
    checks_config: Callable[[Desk], ChecksConfig]
    portal_call: Callable[[str, str], Awaitable[Any]] | None = None
    feeds: Mapping[str, StableVersionsFeed] = field(default_factory=dict)
    cache: CheckCache = field(default_factory=CheckCache)
    _scopes: dict[str, DeskScope] = field(default_factory=dict)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.store.pool

    def reconfigure(
        self,
        desks: DeskRegistry,
        checks_config: Callable[[Desk], ChecksConfig],
        feeds: Mapping[str, StableVersionsFeed],
    ) -> None:
        """A desk configuration reload: the next event is examined under `desks` (scopes built again)."""
        self.desks, self.checks_config, self.feeds, self._scopes = desks, checks_config, feeds, {}

    async def handle(self, envelope: EventEnvelope) -> str:
        """Act on one ticket event; returns what was done (for logs and tests)."""
        event = envelope.event
        if isinstance(event, e.TicketOpened | e.MergeUndone):  # an undone merge is examined again
            return await self._examine_ticket(envelope, fresh=False)
        if isinstance(event, e.CustomerMessageAdded):
            return await self._on_customer_message(envelope, event)
        if isinstance(event, _CLOSING):
            await forget_ticket(self.pool, event.ticket_id)  # no longer a duplicate candidate (idempotent)
            return "forgotten"
        return "ignored"

    async def _on_customer_message(self, envelope: EventEnvelope, message: e.CustomerMessageAdded) -> str:
        if await self._already_processed(envelope.event_id):
            return "duplicate delivery"
        history = await self._history(message.ticket_id)
        state = fold(history)
        failures = [ev for ev in history if isinstance(ev, e.PreflightFailed)]
        awaiting = state.status is Status.AWAITING_CUSTOMER
        reaction = domain.reaction_to(message, awaiting, failures[-1] if failures else None)
        if reaction is domain.Reaction.IGNORE:
            return "ignored"
        return await self._examine_ticket(envelope, fresh=reaction is domain.Reaction.RECHECK, history=history)

    async def _examine_ticket(
        self, envelope: EventEnvelope, *, fresh: bool, history: Sequence[e.TicketEvent] | None = None
    ) -> str:
        if await self._already_processed(envelope.event_id):
            return "duplicate delivery"
        ticket_id: uuid.UUID = envelope.event.ticket_id  # type: ignore[union-attr]
        history = history if history is not None else await self._history(ticket_id)
        state = fold(history)
        if state.status not in (Status.OPENED, Status.AWAITING_CUSTOMER):
            return f"nothing to do in state {state.status.value}"
        opened = next(ev for ev in history if isinstance(ev, e.TicketOpened))
        desk, track = self._desk_and_track(opened)
        messages = [ev for ev in history if isinstance(ev, e.CustomerMessageAdded)]
        text = domain.ticket_text(opened, messages)
        findings = await self._findings(desk, track, opened, text, fresh=fresh, may_merge=not state.merge_undone)
        command = domain.decide_outcome(findings)
        await self._commit(envelope, command, self._open_ticket_row(desk, opened, text, command))
        return type(command).__name__

    async def _findings(
        self, desk: Desk, track: Track, opened: e.TicketOpened, text: str, *, fresh: bool, may_merge: bool
    ) -> domain.Findings:
        """Each step runs only when every earlier one let the ticket through (domain.decide_outcome's order)."""
        roles = effective_roles(opened.chat.platform, opened.requester.roles)
        found = domain.Findings(
            opened.ticket_id,
            check_eligibility(track, roles, opened.requester.admin_unverified),
            opened.requester.locale,
            examined_at=datetime.now(UTC),
        )
        if not found.eligibility.eligible:
            return found
        if opened.chat.platform == "bitrix24" and desk.preflight.checks:
            checks = await self._portal_checks(desk, opened.chat, fresh=fresh)
            found = replace(found, portal_checks=checks)
            if not all(check.passed for check in checks):
                return found
        scope = self._scope(desk)
        decision = scope.classifier.classify(text)
        category = scope.desk_category(decision.category)
        verdict = domain.scope_verdict(
            decision, category, refer_min_score=scope.refer_min_score, referral=scope.referral(category),
            title=scope.titles.get(category, (category, category)),
        )  # fmt: skip
        found = replace(found, scope=verdict)
        kind = domain.duplicate_kind(verdict.category)
        if verdict.refer or kind is None:
            return found
        if desk.preflight.duplicate_check:
            async with self.pool.acquire() as conn:
                new = TicketText(str(opened.ticket_id), _organisation(opened.chat), kind, text, _scope(desk, opened))
                duplicates = sort_duplicates(await find_duplicates(conn, new), may_merge=may_merge)
            found = replace(found, suggestions=duplicates.suggestions)
            if duplicates.merge is not None:
                return replace(found, duplicate=duplicates.merge)
        if verdict.category == "feature_request":
            found = replace(found, feature_request=assess_feature_request(text))
        return found

    async def _portal_checks(self, desk: Desk, chat: ChatRef, *, fresh: bool) -> tuple[CheckEvidence, ...]:
        url = portal_url_for(desk, chat)
        if url is None:
            log.warning("preflight: no portal address for %s/%s; portal checks skipped", desk.id, chat.tenant_id)
            return (domain.no_portal_url_evidence(),)
        config = self.checks_config(desk)
        target = PortalTarget(url=url, member_id=chat.tenant_id)
        if fresh:
            self.cache.invalidate(cache_key(target))  # /recheck: the customer says they fixed something
        feed = self.feeds.get(desk.id)
        stable = await feed.current() if feed is not None else None
        report = await run_portal_checks(target, config, self.resolver, self.cache, ask=self._ask(chat), feed=stable)
        return domain.portal_evidence(report.results, desk.preflight.checks)

    def _ask(self, chat: ChatRef) -> PortalAsk | None:
        call = self.portal_call
        if call is None:
            return None

        async def ask(method: str) -> Any:
            return await call(chat.tenant_id, method)

        return ask

    def _open_ticket_row(
        self, desk: Desk, opened: e.TicketOpened, text: str, command: c.TicketCommand
    ) -> TicketText | None:
        """A passed bug report or feature request joins the duplicate index of its organisation."""
        if not isinstance(command, c.RecordPreflightPassed) or not desk.preflight.duplicate_check:
            return None
        kind = domain.duplicate_kind(command.category)
        if kind is None:
            return None
        return TicketText(str(opened.ticket_id), _organisation(opened.chat), kind, text, _scope(desk, opened))

    async def _commit(self, envelope: EventEnvelope, command: c.TicketCommand, index: TicketText | None) -> None:
        stream = ticket_stream(command.ticket_id)
        traceparent, tracestate = tracing.current()  # the record's consumer span (per_key)
        metadata = EventMetadata(
            correlation_id=envelope.metadata.correlation_id,
            causation_id=envelope.event_id,
            traceparent=traceparent or envelope.metadata.traceparent,
            tracestate=tracestate if traceparent else envelope.metadata.tracestate,
        )
        for attempt in range(1, 6):
            try:
                async with first_time(self.pool, CONSUMER, envelope.event_id) as conn:
                    if conn is None:
                        return  # another delivery of the same event got here first
                    decided = await execute(
                        self.store, stream, command, decide, evolve, initial_state(),
                        metadata=metadata, command_id=envelope.event_id, conn=conn,
                    )  # fmt: skip
                    if index is not None and decided.events:
                        title = _title(index.text)
                        await record_open_ticket(
                            conn, command.ticket_id, index.organisation_id, index.kind, title, index.text,
                            index.merge_scope,
                        )  # fmt: skip
                return
            except ConcurrencyError:
                if attempt == 5:
                    raise
            except IllegalTransition as exc:
                raise Rejected(f"illegal transition: {exc}") from exc

    async def _already_processed(self, event_id: uuid.UUID) -> bool:
        return await already_processed(self.pool, CONSUMER, event_id)

    async def _history(self, ticket_id: uuid.UUID) -> list[e.TicketEvent]:
        envelopes = await self.store.read_stream(ticket_stream(ticket_id))
        events: list[Any] = [env.event for env in envelopes]
        if not events or not isinstance(events[0], e.TicketOpened):
            raise Rejected(f"unknown ticket {ticket_id}: the store has no TicketOpened for it")
        return events

    def _desk_and_track(self, opened: e.TicketOpened) -> tuple[Desk, Track]:
        desk = self.desks.desks.get(opened.desk_id)
        if desk is None:
            raise Rejected(f"unknown desk {opened.desk_id!r} (ticket {opened.ticket_id})")
        try:
            return desk, self.desks.track(desk.id, opened.track_id)
        except KeyError:
            raise Rejected(f"unknown track {opened.track_id!r} of desk {desk.id!r}") from None

    def _scope(self, desk: Desk) -> DeskScope:
        if desk.id not in self._scopes:
            self._scopes[desk.id] = scope_for(desk)
        return self._scopes[desk.id]


def _organisation(chat: ChatRef) -> str:
    """The tenant whose open tickets a new one is compared with (an eXpress bot, a Bitrix24 portal).
    A public bot serves many customers: who may be merged is narrowed by `_scope`."""
    return f"{chat.platform}:{chat.tenant_id}"


def _scope(desk: Desk, opened: e.TicketOpened) -> str:
    return merge_scope(desk, opened.chat, opened.requester)


def _title(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:120]
