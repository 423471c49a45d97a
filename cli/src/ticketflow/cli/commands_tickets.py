"""`ticketflow` commands about tickets: their stored events, replays, merges, the commands people send on
`ticket.commands`, and the agent roster."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from ticketflow.cli import tickets
from ticketflow.cli.root import (
    Actor,
    TicketId,
    agent_app,
    app,
    ctx_of,
    run,
    ticket_app,
)
from ticketflow.contracts import commands as c
from ticketflow.contracts.roster_events import AgentJoinedQueue, AgentStatusChanged
from ticketflow.contracts.topics import TICKET_COMMANDS
from ticketflow.contracts.values import PRIORITIES
from ticketflow.messaging.replay import ticket_streams

# -- tickets ------------------------------------------------------------------------------------------


@ticket_app.command("stream")
def ticket_stream(context: typer.Context, ticket_id: TicketId) -> None:
    """Every stored event of the ticket (lifecycle, SLA, notifications) as JSON, in store order."""
    run(tickets.show_stream(ctx_of(context), ticket_id))


@ticket_app.command("timeline")
def ticket_timeline(context: typer.Context, ticket_id: TicketId) -> None:
    """The ticket's events as a readable timeline."""
    run(tickets.show_timeline(ctx_of(context), ticket_id))


@app.command()
def replay(
    context: typer.Context,
    stream_id: Annotated[str | None, typer.Argument(help="a stream (ticket-<uuid>, agent-<id>, ...)")] = None,
    ticket: Annotated[uuid.UUID | None, typer.Option(help="every stream of this ticket instead")] = None,
) -> None:
    """Queue stored events for the relay again (they reach Kafka once more; consumers dedupe)."""
    if (stream_id is None) == (ticket is None):
        raise typer.BadParameter("give a stream id or --ticket, not both")
    run(tickets.replay(ctx_of(context), ticket_streams(ticket) if ticket else [str(stream_id)]))


@app.command()
def merges(
    context: typer.Context,
    cross_requester: Annotated[bool, typer.Option(help="only merges into another requester's ticket")] = False,
) -> None:
    """Automatic merges (DuplicateSuspected) still in force, newest first."""
    run(tickets.show_merges(ctx_of(context), cross_requester=cross_requester))


# -- commands on ticket.commands -----------------------------------------------------------------------


def _send(context: typer.Context, command: c.TicketCommand, actor: str) -> None:
    run(tickets.send_command(ctx_of(context), command, actor, TICKET_COMMANDS))


@app.command()
def assign(context: typer.Context, ticket_id: TicketId, agent: str, actor: Actor = "sre") -> None:
    """Assign the ticket to an agent (routing applies it)."""
    _send(context, c.AssignTicket(ticket_id, agent, "manual", actor), actor)


@app.command()
def unassign(context: typer.Context, ticket_id: TicketId, reason: str, actor: Actor = "sre") -> None:
    """Take the ticket from its agent (routing)."""
    _send(context, c.UnassignTicket(ticket_id, reason, actor), actor)


@app.command()
def priority(context: typer.Context, ticket_id: TicketId, value: str, actor: Actor = "sre") -> None:
    """Change the ticket's priority: urgent, high, normal or low (routing)."""
    if value not in PRIORITIES:
        raise typer.BadParameter(f"priority must be one of {', '.join(PRIORITIES)} (got {value!r})")
    _send(context, c.ChangePriority(ticket_id, value, actor), actor)  # type: ignore[arg-type]


@app.command()
def move(
    context: typer.Context, ticket_id: TicketId, queue: str, tier: str = "l1", to_priority: Annotated[
        str, typer.Option("--priority", help="urgent, high, normal or low")] = "normal", actor: Actor = "sre",
) -> None:  # fmt: skip
    """Move the ticket to another queue (routing)."""
    if to_priority not in PRIORITIES:
        raise typer.BadParameter(f"priority must be one of {', '.join(PRIORITIES)} (got {to_priority!r})")
    command = c.RouteTicket(ticket_id, queue, tier, to_priority, "manual", f"moved by {actor}", actor)  # type: ignore[arg-type]
    _send(context, command, actor)


@app.command()
def start(context: typer.Context, ticket_id: TicketId, agent: str, actor: Actor = "sre") -> None:
    """The agent starts work on the ticket (intake applies agents' commands)."""
    _send(context, c.StartWork(ticket_id, agent), actor)


@app.command()
def reply(context: typer.Context, ticket_id: TicketId, agent: str, text: str, actor: Actor = "sre") -> None:
    """Reply to the customer as the agent (the command id becomes the message id)."""
    _send(context, c.ReplyAsAgent(ticket_id, agent, "", text), actor)


@app.command()
def wait(context: typer.Context, ticket_id: TicketId, reason: str, actor: Actor = "sre") -> None:
    """Wait for the customer (the SLA clock pauses)."""
    _send(context, c.WaitForCustomer(ticket_id, reason, actor), actor)


@app.command()
def resolve(context: typer.Context, ticket_id: TicketId, resolution: str, actor: Actor = "sre") -> None:
    """Resolve the ticket."""
    _send(context, c.ResolveTicket(ticket_id, resolution, actor), actor)


@app.command()
def close(context: typer.Context, ticket_id: TicketId, reason: str, actor: Actor = "sre") -> None:
    """Close the ticket."""
    _send(context, c.CloseTicket(ticket_id, reason, actor), actor)


@app.command()
def reopen(context: typer.Context, ticket_id: TicketId, reason: str, actor: Actor = "sre") -> None:
    """Reopen the ticket."""
    _send(context, c.ReopenTicket(ticket_id, reason, actor), actor)


@app.command("undo-merge")
def undo_merge(context: typer.Context, ticket_id: TicketId, reason: str, actor: Actor = "sre") -> None:
    """Undo an automatic merge (see `ticketflow merges`)."""
    _send(context, c.UndoMerge(ticket_id, reason, actor), actor)


@app.command("link-known-problem")
def link_known_problem(context: typer.Context, ticket_id: TicketId, problem_ticket_id: uuid.UUID,
                       actor: Actor = "sre") -> None:  # fmt: skip
    """Link the ticket to a known problem's ticket."""
    _send(context, c.LinkKnownProblem(ticket_id, problem_ticket_id, actor), actor)


# -- agents ---------------------------------------------------------------------------------------------


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@agent_app.command("join")
def agent_join(context: typer.Context, agent_id: str, queue_id: str, skills: str = "", languages: str = "ru",
               capacity: int = 5) -> None:  # fmt: skip
    """The agent joins a queue (skills and languages: comma lists)."""
    event = AgentJoinedQueue(agent_id, queue_id, _csv(skills), _csv(languages), capacity)
    run(tickets.agent_event(ctx_of(context), event))


@agent_app.command("status")
def agent_status(context: typer.Context, agent_id: str, status: Annotated[str, typer.Argument(
        help="online, away or offline")]) -> None:  # fmt: skip
    """The agent's availability."""
    if status not in ("online", "away", "offline"):
        raise typer.BadParameter(f"status must be online, away or offline (got {status!r})")
    run(tickets.agent_event(ctx_of(context), AgentStatusChanged(agent_id, status)))  # type: ignore[arg-type]
