"""Pure decisions: which ticket a message lands on, slash commands, self-help hints."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.contracts.ids import ticket_number
from ticketflow.intake.domain.messages import DeskRoute, Outcome, decide_message
from ticketflow.intake.domain.slash import Slash, parse_slash
from ticketflow.intake.domain.texts import STATUS_WORDS, self_help_text
from ticketflow.lifecycle import Status, TicketState, evolve, fold

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EXPRESS = DeskRoute("express", "client", self_help_hints=True)
B24 = DeskRoute("bitrix24-box", "box")


def message(text: str, mid: str = "m1", platform: str = "express", admin: bool = False) -> ChatMessage:
    return ChatMessage(
        platform=platform,  # type: ignore[arg-type]
        tenant_id="bot-1",
        conversation_id="chat-1",
        message_id=mid,
        sender=ChatSender("user-1", "Ivan", is_admin=admin, locale="ru"),
        text=text,
        received_at=NOW,
    )


def const(value: uuid.UUID) -> Callable[[], uuid.UUID]:
    return lambda: value


def opened(text: str = "printer broken") -> TicketState:
    ticket_id = uuid.uuid4()
    decision = decide_message(message(text), EXPRESS, None, new_ticket_id=lambda: ticket_id, first_in_conversation=True)
    return fold(decision.events)


def test_first_message_opens_a_ticket_for_the_desk_and_offers_self_help() -> None:
    ticket_id = uuid.uuid4()
    decision = decide_message(
        message("не работает"), EXPRESS, None, new_ticket_id=lambda: ticket_id, first_in_conversation=True
    )
    assert decision.outcome is Outcome.OPENED
    [event] = decision.events
    assert isinstance(event, e.TicketOpened)
    assert (event.ticket_id, event.desk_id, event.track_id) == (ticket_id, "express", "client")
    assert event.chat.conversation_id == "chat-1" and event.platform_message_id == "m1"
    [reply] = decision.replies
    assert reply.reason == "self_help_hints" and "VPN" in reply.text and "кэш" in reply.text


def test_self_help_only_for_the_first_message_and_only_where_configured() -> None:
    later = decide_message(message("x"), EXPRESS, None, new_ticket_id=uuid.uuid4, first_in_conversation=False)
    bitrix = decide_message(
        message("x", platform="bitrix24"), B24, None, new_ticket_id=uuid.uuid4, first_in_conversation=True
    )
    assert later.replies == [] and bitrix.replies == []


def test_a_message_on_an_open_ticket_is_added_to_it() -> None:
    state = opened()
    decision = decide_message(
        message("more", "m2"), EXPRESS, state, new_ticket_id=uuid.uuid4, first_in_conversation=False
    )
    assert decision.outcome is Outcome.ADDED and decision.ticket_id == state.ticket_id
    [event] = decision.events
    assert isinstance(event, e.CustomerMessageAdded) and event.platform_message_id == "m2"


def test_a_ticket_that_takes_no_messages_gets_a_new_ticket() -> None:
    state = opened()
    assert state.ticket_id is not None
    referred = evolve(state, e.TicketReferred(state.ticket_id, "custom_development", "partners"))
    closed = evolve(referred, e.TicketClosed(state.ticket_id, "done", "agent"))
    for finished in (referred, closed):
        fresh = uuid.uuid4()
        decision = decide_message(
            message("again", "m3"),
            EXPRESS,
            finished,
            new_ticket_id=const(fresh),
            first_in_conversation=False,
        )
        assert decision.outcome is Outcome.OPENED and decision.ticket_id == fresh


def test_ticket_command_opens_a_new_ticket_even_with_one_open() -> None:
    state = opened()
    fresh = uuid.uuid4()
    decision = decide_message(
        message("/ticket VPN drops"), EXPRESS, state, new_ticket_id=lambda: fresh, first_in_conversation=False
    )
    assert decision.ticket_id == fresh
    [event] = decision.events
    assert isinstance(event, e.TicketOpened) and event.text == "VPN drops"


def test_status_answers_and_changes_nothing() -> None:
    state = opened()
    decision = decide_message(message("/status"), EXPRESS, state, new_ticket_id=uuid.uuid4, first_in_conversation=False)
    assert decision.outcome is Outcome.STATUS and decision.events == []
    assert state.ticket_id is not None
    number = ticket_number(state.ticket_id)  # the number notifications gives the requester, not the UUID
    assert decision.replies[0].text == f"Обращение {number}: зарегистрировано, идёт проверка."


def test_every_status_has_words_for_the_requester_in_both_languages() -> None:
    assert set(STATUS_WORDS) == set(Status)
    for ru, en in STATUS_WORDS.values():
        assert re.search("[а-яё]", ru) and en.isascii() and "_" not in ru + en


def test_close_resolves_a_worked_ticket_and_refuses_while_in_preflight() -> None:
    state = opened()
    assert state.ticket_id is not None
    refused = decide_message(message("/close"), EXPRESS, state, new_ticket_id=uuid.uuid4, first_in_conversation=False)
    assert refused.outcome is Outcome.NOT_CLOSED and refused.events == []
    routed = fold(
        [
            e.PreflightPassed(state.ticket_id, "howto"),
            e.TicketRouted(state.ticket_id, "q", "l1", "normal", "r"),
        ],
        state,
    )
    closed = decide_message(
        message("/close", "m9"), EXPRESS, routed, new_ticket_id=uuid.uuid4, first_in_conversation=False
    )
    assert closed.outcome is Outcome.CLOSED
    assert fold(closed.events, routed).status is Status.RESOLVED


def test_recheck_is_recorded_as_a_message() -> None:
    state = opened()
    decision = decide_message(
        message("/recheck", "m5"), EXPRESS, state, new_ticket_id=uuid.uuid4, first_in_conversation=False
    )
    assert decision.outcome is Outcome.ADDED and decision.events[0].text == "/recheck"  # type: ignore[union-attr]


def test_self_help_text_in_english() -> None:
    assert "VPN" in self_help_text("en-US") and "Update" in self_help_text("en")


@given(st.text(max_size=60))
def test_parse_slash_never_fails_and_only_knows_four_commands(text: str) -> None:
    command, rest = parse_slash(text)
    assert command is None or command in set(Slash)
    if command is None:
        assert rest == text


def test_parse_slash_strips_the_bot_mention() -> None:
    assert parse_slash("/Ticket@supportbot printer broken") == (Slash.TICKET, "printer broken")
    assert parse_slash("/unknown thing") == (None, "/unknown thing")


@given(st.lists(st.sampled_from(["text", "/status", "/close", "/recheck", "/ticket x"]), min_size=1, max_size=12))
def test_every_message_lands_on_exactly_one_ticket_or_none(texts: list[str]) -> None:
    state: TicketState | None = None
    for n, text in enumerate(texts):
        decision = decide_message(
            message(text, f"m{n}"), EXPRESS, state, new_ticket_id=uuid.uuid4, first_in_conversation=n == 0
        )
        if decision.events:
            base = TicketState() if decision.opened or state is None else state
            state = fold(decision.events, base)
            assert state.ticket_id == decision.ticket_id
        opened_events = [ev for ev in decision.events if isinstance(ev, e.TicketOpened)]
        assert len(opened_events) == (1 if decision.opened else 0)


def test_a_contract_bot_vouches_for_its_users_as_system_admins() -> None:
    contract = DeskRoute("express", "technical", implied_roles=("system_admin",))
    decision = decide_message(
        message("VPN gateway drops"), contract, None, new_ticket_id=uuid.uuid4, first_in_conversation=True
    )
    [event] = decision.events
    assert isinstance(event, e.TicketOpened) and event.requester.roles == ("system_admin",)
    plain = decide_message(message("x"), EXPRESS, None, new_ticket_id=uuid.uuid4, first_in_conversation=True)
    assert isinstance(plain.events[0], e.TicketOpened) and plain.events[0].requester.roles == ()


def test_bitrix24_tickets_carry_the_portal_address_for_preflight() -> None:
    msg = msgspec.structs.replace(
        message("x", platform="bitrix24", admin=True), portal_url="https://portal.example.ru/"
    )
    decision = decide_message(msg, B24, None, new_ticket_id=uuid.uuid4, first_in_conversation=True)
    [event] = decision.events
    assert isinstance(event, e.TicketOpened)
    assert event.chat.portal_url == "https://portal.example.ru/" and "portal_admin" in event.requester.roles
