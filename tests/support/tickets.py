"""Drive realistic ticket lifecycles through the real decider and store (for store/projection tests)."""

from __future__ import annotations

import contextlib
import random
import uuid
from datetime import UTC, datetime

from ticketflow.contracts import commands as c
from ticketflow.contracts.ids import ticket_stream
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.commands import execute
from ticketflow.lifecycle import IllegalTransition, decide, evolve, initial_state


def open_ticket(ticket: uuid.UUID, n: int) -> c.OpenTicket:
    return c.OpenTicket(
        ticket,
        "bitrix24-box",
        "box-support",
        ChatRef("bitrix24", f"member-{n % 7}", f"chat{n}"),
        Requester(f"user-{n}", roles=("portal_admin",)),
        f"question {n}",
        f"msg-{n}-0",
        datetime.now(UTC),
    )


def random_followups(ticket: uuid.UUID, rng: random.Random) -> list[c.TicketCommand]:
    agent = rng.choice(["ann", "bob", "eve"])
    now = datetime.now(UTC)
    script: list[c.TicketCommand] = [
        c.RecordPreflightPassed(ticket, rng.choice(["installation", "updates", "how_to"])),
        c.RouteTicket(ticket, rng.choice(["box-l1", "box-l2"]), "l1", rng.choice(["normal", "high"]), "rule-1"),
        c.AssignTicket(ticket, agent, "round_robin"),
        c.ReplyAsAgent(ticket, agent, f"r-{rng.random()}", "please try again"),
        c.WaitForCustomer(ticket, "asked for logs", agent),
        c.AddCustomerMessage(ticket, f"m-{rng.random()}", "here are the logs", now),
        c.ChangePriority(ticket, rng.choice(["urgent", "low"]), "lead"),
        c.ResolveTicket(ticket, "fixed", agent),
        c.AddCustomerMessage(ticket, f"m-{rng.random()}", "it broke again", now),
        c.ResolveTicket(ticket, "fixed again", agent),
        c.CloseTicket(ticket, "confirmed", "customer"),
    ]
    if rng.random() < 0.2:
        return [c.ReferTicket(ticket, "custom_development", "out of scope")]
    return script[: rng.randint(1, len(script))]


async def run(store: EventStore, command: c.TicketCommand) -> None:
    # A random script may try something the lifecycle refuses; refusing is the decider's job.
    with contextlib.suppress(IllegalTransition):
        await execute(store, ticket_stream(command.ticket_id), command, decide, evolve, initial_state())
