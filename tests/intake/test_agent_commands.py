"""Which `ticket.commands` intake applies, the actor override, and the failure paths that need no
infrastructure (a fake store and dead-letter sink)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from support.tickets import open_ticket

from ticketflow.contracts import commands as c
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.eventstore.errors import RetryableStoreError
from ticketflow.intake.adapters.agent_commands import AgentCommandHandler
from ticketflow.intake.agent_commands import AGENT_COMMANDS, InvalidCommand, applies, prepare

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
]
IGNORED: list[c.TicketCommand] = [
    open_ticket(T, 1),
    c.AddCustomerMessage(T, "m-2", "hello", datetime.now(UTC)),
    c.RecordPreflightPassed(T, "how_to"),
    c.RecordPreflightFailed(T, ()),
    c.RefuseTicket(T, "not_admin", "no"),
    c.ReferTicket(T, "custom_development", "partners"),
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


@dataclass
class FakeRecord:
    value: bytes | None
    key: bytes | None = b"k"
    topic: str = "ticket.commands"
    partition: int = 0
    offset: int = 0


@dataclass
class RecordedDeadLetters:
    sent: list[tuple[bytes, str, dict[str, str]]] = field(default_factory=list)

    async def send(self, topic: str, key: bytes | None, value: bytes, reason: str, **context: str) -> None:
        self.sent.append((value, reason, context))


class DownStore:
    reads = 0

    async def read_stream(self, stream_id: str, *args: Any, **kwargs: Any) -> list[Any]:
        self.reads += 1
        raise RetryableStoreError("read interrupted: connection refused")


async def test_a_store_outage_is_retried_then_dead_lettered_as_retries_exhausted() -> None:
    store, dead = DownStore(), RecordedDeadLetters()
    handler = AgentCommandHandler(store, dead, attempts=3, base_delay=0.0)  # type: ignore[arg-type]
    env = envelope(c.ResolveTicket(T, "fixed", "ann"))
    outcome = await handler.handle([FakeRecord(msgspec.json.encode(env))])
    assert store.reads == 3 and outcome.dead_lettered == 1
    [(_, reason, context)] = dead.sent
    assert reason.startswith("retries exhausted") and context == {"command_id": str(env.command_id)}


async def test_undecodable_and_invalid_records_are_dead_lettered_and_the_batch_goes_on() -> None:
    dead = RecordedDeadLetters()
    handler = AgentCommandHandler(DownStore(), dead, attempts=1, base_delay=0.0)  # type: ignore[arg-type]
    ignored = msgspec.json.encode(envelope(c.AssignTicket(T, "ann")))
    invalid = msgspec.json.encode(envelope(c.ReplyAsAgent(T, "ann", "m", "")))
    outcome = await handler.handle(
        [FakeRecord(b"{not json"), FakeRecord(None), FakeRecord(ignored), FakeRecord(invalid)]
    )
    assert outcome.dead_lettered == 3 and outcome.unchanged == 1
    assert [reason.split(":")[0] for _, reason, _ in dead.sent] == ["undecodable", "undecodable", "invalid"]
