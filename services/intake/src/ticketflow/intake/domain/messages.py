"""What intake decides for one normalised chat message. Pure: no I/O, no clock, no randomness.

A message in a conversation whose ticket still takes messages is added to it; otherwise a ticket is
opened for the conversation's desk and track. The ticket decider (`ticketflow.lifecycle.decide`) is the
judge of "still takes messages": a closed, merged, refused or referred ticket raises `IllegalTransition`
for `AddCustomerMessage`, and intake then opens a new ticket.

Requester slash commands: `/ticket [text]` opens a new ticket even if one is open, `/status` answers with
the current ticket's status, `/close` closes (or resolves) the current ticket on the requester's behalf,
`/recheck` is recorded as a message on the current ticket (preflight reacts to it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from ticketflow.contracts import commands as c
from ticketflow.contracts.chat import ChatMessage
from ticketflow.contracts.ticket_events import TicketEvent
from ticketflow.contracts.values import ChatRef, Requester, Role
from ticketflow.intake.domain.slash import Slash, parse_slash
from ticketflow.intake.domain.texts import self_help_text, status_text
from ticketflow.lifecycle import IllegalTransition, TicketState, decide

REQUESTER = "requester"


class Outcome(StrEnum):
    OPENED = "opened"
    ADDED = "added"
    STATUS = "status"
    CLOSED = "closed"
    NOT_CLOSED = "not_closed"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class DeskRoute:
    """Where a tenant's messages go. `self_help_hints`: offer the seed's self-help steps first."""

    desk_id: str
    track_id: str
    self_help_hints: bool = False
    # Roles the tenant vouches for: an eXpress bot under a technical-support contract serves the
    # customer's system administrators and partners (BotX itself sends no such role).
    implied_roles: tuple[Role, ...] = ()


@dataclass(frozen=True)
class Reply:
    chat: ChatRef
    reason: str
    text: str


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    ticket_id: uuid.UUID | None
    events: list[TicketEvent] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)

    @property
    def opened(self) -> bool:
        return self.outcome is Outcome.OPENED


def conversation_key(message: ChatMessage) -> str:
    return f"{message.platform}:{message.tenant_id}:{message.conversation_id}"


def chat_ref(message: ChatMessage) -> ChatRef:
    return ChatRef(message.platform, message.tenant_id, message.conversation_id, message.portal_url)


def decide_message(
    message: ChatMessage,
    route: DeskRoute,
    current: TicketState | None,
    *,
    new_ticket_id: Callable[[], uuid.UUID],
    first_in_conversation: bool,
) -> Decision:
    """The effect of one (new, not yet seen) message. `current` is the conversation's ticket, if any;
    `new_ticket_id` is called only if a ticket is opened (ids are the caller's, so this stays pure)."""
    slash, rest = parse_slash(message.text)
    if slash is Slash.STATUS:
        text = status_text(current, message.sender.locale)
        ticket = current.ticket_id if current else None
        return Decision(Outcome.STATUS, ticket, replies=[Reply(chat_ref(message), "status", text)])
    if slash is Slash.CLOSE:
        return _close(message, current)
    if slash is not Slash.TICKET and current is not None and current.ticket_id is not None:
        added = _try_add(message, current)
        if added is not None:
            return added
    text = rest if slash is Slash.TICKET and rest else message.text
    return _open(message, route, new_ticket_id(), text, first_in_conversation)


def _try_add(message: ChatMessage, current: TicketState) -> Decision | None:
    assert current.ticket_id is not None
    command = c.AddCustomerMessage(
        current.ticket_id,
        platform_message_id=message.message_id,
        text=message.text,
        received_at=message.received_at,
        sender_id=message.sender.user_id,
        attachments=message.attachments,
    )
    try:
        events = decide(command, current)
    except IllegalTransition:
        return None  # closed, merged, refused, referred: the conversation gets a new ticket
    return Decision(Outcome.ADDED, current.ticket_id, events)


def _open(
    message: ChatMessage, route: DeskRoute, ticket_id: uuid.UUID, text: str, first_in_conversation: bool
) -> Decision:
    sender = message.sender
    roles = (*sender.roles, *(r for r in route.implied_roles if r not in sender.roles))
    if sender.is_admin and message.platform == "bitrix24" and "portal_admin" not in roles:
        roles = (*roles, "portal_admin")
    command = c.OpenTicket(
        ticket_id,
        desk_id=route.desk_id,
        track_id=route.track_id,
        chat=chat_ref(message),
        requester=Requester(
            sender.user_id, sender.display_name, sender.locale, roles, sender.email, sender.admin_unverified
        ),
        text=text,
        platform_message_id=message.message_id,
        opened_at=message.received_at,
        attachments=message.attachments,
    )
    events = decide(command, TicketState())
    replies = []
    if route.self_help_hints and first_in_conversation:
        replies.append(Reply(chat_ref(message), "self_help_hints", self_help_text(sender.locale)))
    return Decision(Outcome.OPENED, ticket_id, events, replies)


def _close(message: ChatMessage, current: TicketState | None) -> Decision:
    locale = message.sender.locale
    ru = locale.lower().startswith("ru")
    if current is None or current.ticket_id is None:
        text = "Открытых обращений нет." if ru else "You have no open ticket."
        return Decision(Outcome.NOT_CLOSED, None, replies=[Reply(chat_ref(message), "close", text)])
    t = current.ticket_id
    attempts: tuple[c.TicketCommand, ...] = (
        c.CloseTicket(t, reason="closed by the requester", actor=REQUESTER),
        c.ResolveTicket(t, resolution="closed by the requester", actor=REQUESTER),
    )
    for command in attempts:
        try:
            events = decide(command, current)
        except IllegalTransition:
            continue
        text = f"Обращение {t} закрыто." if ru else f"Ticket {t} is closed."
        return Decision(Outcome.CLOSED, t, events, [Reply(chat_ref(message), "close", text)])
    if ru:
        text = f"Обращение {t} нельзя закрыть в статусе {current.status.value}."
    else:
        text = f"Ticket {t} cannot be closed in status {current.status.value}."
    return Decision(Outcome.NOT_CLOSED, t, replies=[Reply(chat_ref(message), "close", text)])
