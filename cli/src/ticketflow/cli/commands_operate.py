"""`ticketflow` commands that operate the running system: dead letters (list, inspect, redrive) and the
operators' commands on `ops.commands`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ticketflow.cli import dead_letters, ops
from ticketflow.cli.context import CliError
from ticketflow.cli.root import (
    Actor,
    TicketId,
    ctx_of,
    dlq_app,
    ops_app,
    run,
)
from ticketflow.contracts import ops as o
from ticketflow.messaging.redrive import REDRIVE_GROUP, DeadLetterFilter

# -- dead letters --------------------------------------------------------------------------------------

Topic = Annotated[str, typer.Argument(help="the topic whose dead letters these are (e.g. chat.inbound)")]


@dlq_app.command("list")
def dlq_list(context: typer.Context, topic: Topic, limit: int = 20) -> None:
    """The newest dead letters of the topic, newest first, with their causes."""
    run(dead_letters.list_letters(ctx_of(context), topic, limit))


@dlq_app.command("show", hidden=True)
def dlq_show(context: typer.Context, topic: Topic, limit: int = 20) -> None:
    """Same as list (its former name)."""
    run(dead_letters.list_letters(ctx_of(context), topic, limit))


@dlq_app.command("inspect")
def dlq_inspect(context: typer.Context, topic: Topic, where: Annotated[str, typer.Argument(
        help="partition:offset (or offset) as `list` shows it")], scan: int = 1000) -> None:  # fmt: skip
    """One dead letter whole: cause, context, where it was read, value and headers."""
    run(dead_letters.inspect(ctx_of(context), topic, where, scan))


@dlq_app.command("redrive")
def dlq_redrive(
    context: typer.Context,
    topic: Topic,
    reason: Annotated[str | None, typer.Option(help="only dead letters with this reason")] = None,
    min_age: Annotated[int | None, typer.Option(help="only those dead-lettered at least this many seconds ago")] = None,
    max_age: Annotated[int | None, typer.Option(help="only those dead-lettered at most this many seconds ago")] = None,
    limit: int = 100_000,
    group: Annotated[str, typer.Option(help="the consumer group that remembers what was redriven")] = REDRIVE_GROUP,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for a confirmation")] = False,
) -> None:
    """Re-publish dead letters to the topic they came from (each once: the redrive group commits)."""
    ctx = ctx_of(context)
    which = DeadLetterFilter(reason, min_age, max_age)
    if not yes:
        if ctx.json or not sys.stdin.isatty():
            raise CliError("a redrive needs a confirmation: run it in a terminal, or add --yes")
        typer.confirm(f"redrive {topic}.dlq to {topic} ({which})?", abort=True)
    run(dead_letters.run_redrive(ctx, topic, which, limit, group))


# -- operators' commands -------------------------------------------------------------------------------

Target = Annotated[str, typer.Option(help="the service that executes it, or '*' for every one that does")]
CommandId = Annotated[str | None, typer.Option("--id", help="command id (idempotency key) [default: generated]")]
Wait = Annotated[float, typer.Option(help="seconds to wait for the answers on ops.events (0: do not wait)")]


def _publish(context: typer.Context, command: o.OpsCommand, actor: str, target: str, command_id: str | None,
             wait_s: float) -> None:  # fmt: skip
    run(ops.publish(ctx_of(context), ops.envelope(command, actor=actor, target=target, command_id=command_id),
                    wait_s=wait_s))  # fmt: skip


@ops_app.command("pause-intake")
def ops_pause(context: typer.Context, desk_id: str, actor: Actor = "sre", command_id: CommandId = None,
              wait_s: Wait = 30.0) -> None:  # fmt: skip
    """Intake holds the desk's messages until resume-intake."""
    _publish(context, o.PauseIntake(desk_id), actor, "intake", command_id, wait_s)


@ops_app.command("resume-intake")
def ops_resume(context: typer.Context, desk_id: str, actor: Actor = "sre", command_id: CommandId = None,
               wait_s: Wait = 30.0) -> None:  # fmt: skip
    """Intake records the desk's held messages, in order, and takes new ones again."""
    _publish(context, o.ResumeIntake(desk_id), actor, "intake", command_id, wait_s)


@ops_app.command("rebuild")
def ops_rebuild(context: typer.Context, projection: str = "tickets", actor: Actor = "sre",
                command_id: CommandId = None, wait_s: Wait = 600.0) -> None:  # fmt: skip
    """The running projector rebuilds a read model (`ticketflow rebuild` does it here, with a progress bar)."""
    _publish(context, o.RebuildProjection(projection), actor, "projector", command_id, wait_s)


@ops_app.command("redrive")
def ops_redrive(
    context: typer.Context, topic: Topic, reason: str | None = None, min_age: int | None = None,
    max_age: int | None = None, actor: Actor = "sre", command_id: CommandId = None, wait_s: Wait = 120.0,
) -> None:  # fmt: skip
    """The projector redrives a dead-letter topic (all, or filtered by reason or age in seconds)."""
    _publish(context, o.RedriveDeadLetters(topic, reason, min_age, max_age), actor, "projector", command_id, wait_s)


@ops_app.command("replay-ticket")
def ops_replay(context: typer.Context, ticket_id: TicketId, actor: Actor = "sre", command_id: CommandId = None,
               wait_s: Wait = 30.0) -> None:  # fmt: skip
    """The projector queues every event of the ticket for the relay again."""
    _publish(context, o.ReplayTicket(ticket_id), actor, "projector", command_id, wait_s)


@ops_app.command("log-level")
def ops_log_level(context: typer.Context, level: str, logger: str = "", target: Target = "*", actor: Actor = "sre",
                  command_id: CommandId = None, wait_s: Wait = 10.0) -> None:  # fmt: skip
    """Change the log level of every instance of the target services (until they restart)."""
    if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise typer.BadParameter(f"level must be DEBUG, INFO, WARNING or ERROR (got {level!r})")
    _publish(context, o.SetLogLevel(level.upper(), logger), actor, target, command_id, wait_s)  # type: ignore[arg-type]


@ops_app.command("reload-desks")
def ops_reload(context: typer.Context, target: Target = "*", actor: Actor = "sre", command_id: CommandId = None,
               wait_s: Wait = 30.0) -> None:  # fmt: skip
    """Every service that reads the desk files reads them again (SLA recalculates running clocks)."""
    _publish(context, o.ReloadDeskConfig(), actor, target, command_id, wait_s)


@ops_app.command("send")
def ops_send(context: typer.Context, command_json: Annotated[str, typer.Argument(
        help="a whole ops command as JSON (docs/schemas/ops-command.schema.json)")],
             wait_s: Wait = 30.0) -> None:  # fmt: skip
    """Send a command written as JSON, checked first as the services check it."""
    run(ops.publish(ctx_of(context), ops.envelope_of(command_json.encode()), wait_s=wait_s))
