"""Which `ticket.commands` intake applies, and how an envelope becomes the command to decide. Pure.

Intake applies the agent workflow commands (people reaching tickets: reply, wait, resolve, close, refer to
partners...; preflight appends its own referrals directly, never through the topic).
Routing owns queue/assignment commands; intake and preflight issue the rest themselves, so a copy of
those on the topic is ignored here rather than applied twice."""

from __future__ import annotations

import msgspec

from ticketflow.contracts import commands as c
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.text import NUL, with_nul_replaced

AgentCommand = (
    c.StartWork
    | c.ReplyAsAgent
    | c.WaitForCustomer
    | c.ResolveTicket
    | c.ReopenTicket
    | c.CloseTicket
    | c.MergeTicket
    | c.UndoMerge
    | c.LinkKnownProblem
    | c.SetFeatureRequestOutcome
    | c.ReferTicket
)
AGENT_COMMANDS: tuple[type[c.TicketCommand], ...] = (
    c.StartWork,
    c.ReplyAsAgent,
    c.WaitForCustomer,
    c.ResolveTicket,
    c.ReopenTicket,
    c.CloseTicket,
    c.MergeTicket,
    c.UndoMerge,
    c.LinkKnownProblem,
    c.SetFeatureRequestOutcome,
    c.ReferTicket,
)
# Identifiers of the agent commands: a NUL in one is malformed (InvalidCommand); in any other string (the
# reply's text, a reason or resolution) it becomes U+FFFD, as in a customer's message (docs/intake.md).
_IDENTIFIERS = ("agent_id", "message_id", "actor")
_DECODERS = {cls: msgspec.json.Decoder(cls) for cls in AGENT_COMMANDS}
# Commands with an `actor` field: the envelope's actor (who sent it) is the one recorded.
_WITH_ACTOR = (
    c.WaitForCustomer, c.ResolveTicket, c.ReopenTicket, c.CloseTicket, c.MergeTicket, c.UndoMerge, c.LinkKnownProblem,
    c.SetFeatureRequestOutcome, c.ReferTicket,
)  # fmt: skip


class InvalidCommand(ValueError):
    """A command intake owns but cannot apply as sent (dead-lettered with this message)."""


def applies(command: c.TicketCommand) -> bool:
    return isinstance(command, AGENT_COMMANDS)


def prepare(envelope: CommandEnvelope) -> AgentCommand | None:
    """The command to decide, or None when another service owns it. Raises InvalidCommand."""
    command = envelope.command
    if not isinstance(command, AGENT_COMMANDS):
        return None
    if isinstance(command, _WITH_ACTOR) and envelope.actor:
        command = msgspec.structs.replace(command, actor=envelope.actor)
    if isinstance(command, c.ReplyAsAgent):
        if not command.text.strip():
            raise InvalidCommand("ReplyAsAgent with an empty text")
        if not command.message_id:
            # The command id is unique per reply and stable across redelivery: a good message id.
            command = msgspec.structs.replace(command, message_id=str(envelope.command_id))
    if isinstance(command, (c.StartWork, c.ReplyAsAgent)) and not command.agent_id.strip():
        raise InvalidCommand(f"{type(command).__name__} without an agent")
    for name in _IDENTIFIERS:
        if NUL in getattr(command, name, ""):
            raise InvalidCommand(f"{type(command).__name__}.{name} contains a NUL character (U+0000)")
    return with_nul_replaced(command, _DECODERS[type(command)])  # type: ignore[return-value]
