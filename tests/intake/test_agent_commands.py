"""Which `ticket.commands` intake applies, the actor override, and the failure paths that need no
infrastructure (a store that is down, dead letters kept by a recording producer)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from intake_app import commands, dead_letters_sent, make_intake
from support.records import FakeRecord
from support.tickets import open_ticket

from ticketflow.contracts import commands as c
from ticketflow.contracts.commands import OPERATOR_COMMANDS, CommandEnvelope
from ticketflow.eventstore.errors import RetryableStoreError
from ticketflow.intake.domain.agent_commands import AGENT_COMMANDS, InvalidCommand, applies, prepare
from ticketflow.messaging.per_key import BatchNotProcessed

T = uuid.UUID("00000000-0000-4000-8000-000000000001")
APPLIED: list[c.TicketCommand] = [
    c.StartWork(T, "ann"),
    c.ReplyAsAgent(T, "ann", "m-1", "try again"),
    c.WaitForCustomer(T, "logs please", "ann"),
    c.ResolveTicket(T, "fixed", "ann"),
    c.ReopenTicket(T, "not fixed", "ann"),
    c.CloseTicket(T, "confirmed", "ann"),
    c.MergeTicket(T, uuid.uuid4(), "ann"),
    c.UndoMerge(T, "another requester's ticket", "ann"),
    c.LinkKnownProblem(T, uuid.uuid4(), "ann"),
    c.SetFeatureRequestOutcome(T, "declined", "ann", "not on the roadmap"),
    c.ReferTicket(T, "custom_development", "partners"),  # an agent's referral (the dashboard)
]
IGNORED: list[c.TicketCommand] = [
    open_ticket(T, 1),
    c.AddCustomerMessage(T, "m-2", "hello", datetime.now(UTC)),
    c.RecordPreflightPassed(T, "how_to"),
    c.RecordPreflightFailed(T, ()),
    c.RefuseTicket(T, "not_admin", "no"),
    c.MarkDuplicate(T, uuid.uuid4(), 0.9),
    c.RouteTicket(T, "box-l1", "l1", "normal", "rule-1"),
    c.AssignTicket(T, "ann"),
    c.UnassignTicket(T, "away"),
    c.ChangePriority(T, "high", "lead"),
]


def envelope(command: c.TicketCommand, actor: str = "lead-kim") -> CommandEnvelope:
    return CommandEnvelope(uuid.uuid4(), datetime.now(UTC), actor, command)


def test_exactly_the_agent_commands_are_applied_and_every_other_is_ignored() -> None:
    assert {type(cmd) for cmd in APPLIED} == set(AGENT_COMMANDS)
    # Every command type in the contract is either intake's or ignored here: none is forgotten.
    assert {type(cmd) for cmd in APPLIED + IGNORED} == set(c.TicketCommand.__args__)  # type: ignore[attr-defined]
    for command in APPLIED:
        assert applies(command) and prepare(envelope(command)) is not None
    for command in IGNORED:
        assert not applies(command) and prepare(envelope(command)) is None


@pytest.mark.parametrize("command", APPLIED, ids=lambda cmd: type(cmd).__name__)
def test_the_envelope_actor_is_recorded_where_the_command_has_an_actor(command: c.TicketCommand) -> None:
    prepared = prepare(envelope(command, "lead-kim"))
    if hasattr(command, "actor"):
        assert prepared is not None and prepared.actor == "lead-kim"  # type: ignore[union-attr]
    else:  # StartWork / ReplyAsAgent: the agent is the agent_id, never replaced
        assert prepared == command
    assert prepare(envelope(command, "")) == command  # no actor on the envelope: the command's own


def test_reply_without_message_id_takes_the_command_id_and_an_empty_reply_is_invalid() -> None:
    env = envelope(c.ReplyAsAgent(T, "ann", "", "try again"))
    assert prepare(env) == c.ReplyAsAgent(T, "ann", str(env.command_id), "try again")
    with pytest.raises(InvalidCommand, match="empty text"):
        prepare(envelope(c.ReplyAsAgent(T, "ann", "m", "  ")))
    with pytest.raises(InvalidCommand, match="without an agent"):
        prepare(envelope(c.StartWork(T, "")))


def record(value: bytes | None, offset: int = 0) -> FakeRecord:
    return FakeRecord("ticket.commands", 0, offset, str(T).encode(), value)


class DownStore:
    reads = 0

    async def read_stream(self, stream_id: str, *args: Any, **kwargs: Any) -> list[Any]:
        self.reads += 1
        raise RetryableStoreError("read interrupted: connection refused")


async def test_a_store_outage_is_retried_then_the_batch_is_given_back_and_never_dead_lettered() -> None:
    store = DownStore()
    intake, producer = make_intake(events=store)  # type: ignore[arg-type]
    worker = commands(intake, producer)
    worker.attempts = 3
    env = envelope(c.ResolveTicket(T, "fixed", "ann"))
    with pytest.raises(BatchNotProcessed):  # the subscriber seeks back: the batch comes again after a pause
        await worker.process([record(msgspec.json.encode(env))])
    assert store.reads == 3 and producer.sent == []


async def test_undecodable_and_invalid_records_are_dead_lettered_and_the_batch_goes_on() -> None:
    intake, producer = make_intake(events=DownStore())  # type: ignore[arg-type]
    worker = commands(intake, producer)
    ignored = msgspec.json.encode(envelope(c.AssignTicket(T, "ann")))
    invalid_env = envelope(c.ReplyAsAgent(T, "ann", "m", ""))
    await worker.process(
        [record(b"{not json", 0), record(None, 1), record(ignored, 2), record(msgspec.json.encode(invalid_env), 3)]
    )
    letters = dead_letters_sent(producer)
    assert [(d.original_offset, d.reason) for d in letters] == [(0, "undecodable"), (1, "undecodable"), (3, "rejected")]
    assert letters[2].detail == "invalid: ReplyAsAgent with an empty text"
    assert letters[2].context == {"command-id": str(invalid_env.command_id)}
    assert {d.consumer for d in letters} == {"intake-commands"} and worker.handled == 1  # the ignored one


async def test_a_command_no_service_applies_from_the_topic_is_dead_lettered_as_not_an_operator_command() -> None:
    """MarkDuplicate, RefuseTicket and the other commands the services decide themselves used to vanish."""
    intake, dead = make_intake()
    records = [
        FakeRecord("ticket.commands", 0, n, str(T).encode(), msgspec.json.encode(envelope(cmd)))
        for n, cmd in enumerate(IGNORED)
    ]
    await commands(intake, dead).process(records)
    letters = dead_letters_sent(dead)
    routing_owns = {c.RouteTicket, c.AssignTicket, c.UnassignTicket, c.ChangePriority}
    expected = [type(cmd).__name__ for cmd in IGNORED if type(cmd) not in routing_owns]
    assert [letter.reason for letter in letters] == ["not an operator command"] * len(expected)
    assert [letter.detail.split()[0] for letter in letters] == expected
    assert all(letter.context["command-id"] for letter in letters)
    assert set(OPERATOR_COMMANDS) == set(AGENT_COMMANDS) | routing_owns
