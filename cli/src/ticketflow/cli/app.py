"""`ticketflow`: every operator task in one command (typer for the commands and their help, rich for
tables and the progress bar; `--json` for scripts). Connection flags default to the services' own
variables (TICKETFLOW_KAFKA_BOOTSTRAP, TICKETFLOW_PG_DSN, TICKETFLOW_KAFKA_SECURITY_PROTOCOL and the
rest), so the command line reaches what the services reach. Every error is one line on stderr and a
non-zero exit status (2: the command line itself is wrong; 1: the operation could not be done)."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

# typer 0.29 vendors click and names this one nowhere public: `ticketflow` alone shows the help.
from typer._click.exceptions import NoArgsIsHelpError

from ticketflow.cli import dead_letters, kafka, ops, services, tickets
from ticketflow.cli.context import CliError, CliSettings, Context
from ticketflow.contracts import commands as c
from ticketflow.contracts import ops as o
from ticketflow.contracts.roster_events import AgentJoinedQueue, AgentStatusChanged
from ticketflow.contracts.topics import TICKET_COMMANDS
from ticketflow.contracts.values import PRIORITIES
from ticketflow.messaging.redrive import REDRIVE_GROUP, DeadLetterFilter
from ticketflow.messaging.replay import ticket_streams
from ticketflow.runtime.settings import SettingsError, load_settings

T = TypeVar("T")
app = typer.Typer(name="ticketflow", help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None)  # fmt: skip
ticket_app = typer.Typer(help="a ticket's stored events", no_args_is_help=True)
dlq_app = typer.Typer(help="dead letters: list (newest first), inspect, redrive", no_args_is_help=True)
ops_app = typer.Typer(help="operators' commands on ops.commands, with the services' answers", no_args_is_help=True)
agent_app = typer.Typer(help="the agent roster (events routing rebuilds it from)", no_args_is_help=True)
notifications_app = typer.Typer(help="notifications' dead deliveries", no_args_is_help=True)
desks_app = typer.Typer(help="desk configuration", no_args_is_help=True)
topics_app = typer.Typer(help="the declared Kafka topics", no_args_is_help=True)
for sub, name in ((ticket_app, "ticket"), (dlq_app, "dlq"), (ops_app, "ops"), (agent_app, "agent"),
                  (notifications_app, "notifications"), (desks_app, "desks"), (topics_app, "topics")):  # fmt: skip
    app.add_typer(sub, name=name)

Actor = Annotated[str, typer.Option(help="who does it (recorded with the command)")]
TicketId = Annotated[uuid.UUID, typer.Argument(help="the ticket's id")]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def _ctx(context: typer.Context) -> Context:
    obj = context.find_root().obj
    assert isinstance(obj, Context)
    return obj


@app.callback()
def connect(
    context: typer.Context,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers [default: $TICKETFLOW_KAFKA_BOOTSTRAP]")
    ] = None,
    pg_dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN [default: $TICKETFLOW_PG_DSN]")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="one JSON document on stdout, for scripts")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="the clients' own log lines on stderr")] = False,
) -> None:
    # The command reports its errors itself, on one line; the Kafka and database clients' log lines
    # (reconnects, unclosed clients after a failure) only with --verbose.
    logging.basicConfig(level=logging.INFO if verbose else logging.CRITICAL + 1, format="%(name)s: %(message)s")
    overrides = {k: v for k, v in (("kafka_bootstrap", bootstrap), ("pg_dsn", pg_dsn)) if v}
    settings = load_settings(CliSettings, **overrides)
    context.obj = Context(settings.kafka_bootstrap, settings.pg_dsn, settings.kafka_security(), json_output,
                          settings.ops_topic, settings.ops_events_topic)  # fmt: skip


# -- tickets ------------------------------------------------------------------------------------------


@ticket_app.command("stream")
def ticket_stream(context: typer.Context, ticket_id: TicketId) -> None:
    """Every stored event of the ticket (lifecycle, SLA, notifications) as JSON, in store order."""
    run(tickets.show_stream(_ctx(context), ticket_id))


@ticket_app.command("timeline")
def ticket_timeline(context: typer.Context, ticket_id: TicketId) -> None:
    """The ticket's events as a readable timeline."""
    run(tickets.show_timeline(_ctx(context), ticket_id))


@app.command()
def replay(
    context: typer.Context,
    stream_id: Annotated[str | None, typer.Argument(help="a stream (ticket-<uuid>, agent-<id>, ...)")] = None,
    ticket: Annotated[uuid.UUID | None, typer.Option(help="every stream of this ticket instead")] = None,
) -> None:
    """Queue stored events for the relay again (they reach Kafka once more; consumers dedupe)."""
    if (stream_id is None) == (ticket is None):
        raise typer.BadParameter("give a stream id or --ticket, not both")
    run(tickets.replay(_ctx(context), ticket_streams(ticket) if ticket else [str(stream_id)]))


@app.command()
def merges(
    context: typer.Context,
    cross_requester: Annotated[bool, typer.Option(help="only merges into another requester's ticket")] = False,
) -> None:
    """Automatic merges (DuplicateSuspected) still in force, newest first."""
    run(tickets.show_merges(_ctx(context), cross_requester=cross_requester))


# -- commands on ticket.commands -----------------------------------------------------------------------


def _send(context: typer.Context, command: c.TicketCommand, actor: str) -> None:
    run(tickets.send_command(_ctx(context), command, actor, TICKET_COMMANDS))


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
    run(tickets.agent_event(_ctx(context), event))


@agent_app.command("status")
def agent_status(context: typer.Context, agent_id: str, status: Annotated[str, typer.Argument(
        help="online, away or offline")]) -> None:  # fmt: skip
    """The agent's availability."""
    if status not in ("online", "away", "offline"):
        raise typer.BadParameter(f"status must be online, away or offline (got {status!r})")
    run(tickets.agent_event(_ctx(context), AgentStatusChanged(agent_id, status)))  # type: ignore[arg-type]


# -- dead letters --------------------------------------------------------------------------------------

Topic = Annotated[str, typer.Argument(help="the topic whose dead letters these are (e.g. chat.inbound)")]


@dlq_app.command("list")
def dlq_list(context: typer.Context, topic: Topic, limit: int = 20) -> None:
    """The newest dead letters of the topic, newest first, with their causes."""
    run(dead_letters.list_letters(_ctx(context), topic, limit))


@dlq_app.command("show", hidden=True)
def dlq_show(context: typer.Context, topic: Topic, limit: int = 20) -> None:
    """Same as list (its former name)."""
    run(dead_letters.list_letters(_ctx(context), topic, limit))


@dlq_app.command("inspect")
def dlq_inspect(context: typer.Context, topic: Topic, where: Annotated[str, typer.Argument(
        help="partition:offset (or offset) as `list` shows it")], scan: int = 1000) -> None:  # fmt: skip
    """One dead letter whole: cause, context, where it was read, value and headers."""
    run(dead_letters.inspect(_ctx(context), topic, where, scan))


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
    ctx = _ctx(context)
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
    run(ops.publish(_ctx(context), ops.envelope(command, actor=actor, target=target, command_id=command_id),
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
def ops_rebuild(context: typer.Context, projection: str = "ticket_summaries", actor: Actor = "sre",
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
    run(ops.publish(_ctx(context), ops.envelope_of(command_json.encode()), wait_s=wait_s))


# -- Kafka -------------------------------------------------------------------------------------------------


@app.command()
def tail(
    context: typer.Context,
    topics: Annotated[list[str], typer.Argument(help="topics (their records decoded by the contracts)")],
    from_beginning: Annotated[bool, typer.Option(help="from the oldest record kept")] = False,
    limit: Annotated[int | None, typer.Option(help="stop after this many records")] = None,
    idle: Annotated[float | None, typer.Option(help="stop after this many seconds without a record")] = None,
) -> None:
    """Follow topics, each record decoded (ticket.events, chat.inbound, ticket.commands, ops.*, their .dlq)."""
    run(kafka.tail(_ctx(context), topics, from_beginning=from_beginning, limit=limit, idle_s=idle))


@app.command()
def lag(context: typer.Context, group: Annotated[list[str] | None, typer.Option(
        help="only these consumer groups (repeatable)")] = None) -> None:  # fmt: skip
    """Consumer lag per group and partition: committed offset, end offset, lag."""
    run(kafka.lag(_ctx(context), group or []))


@topics_app.command("create")
def topics_create(context: typer.Context, replication_factor: Annotated[int, typer.Option(
        envvar="TICKETFLOW_KAFKA_REPLICATION_FACTOR")] = 1) -> None:  # fmt: skip
    """Create every declared topic that is missing (make topics; production: Strimzi KafkaTopics)."""
    run(kafka.create_topics(_ctx(context), replication_factor))


# -- services -------------------------------------------------------------------------------------------


@app.command()
def health(
    context: typer.Context,
    host: Annotated[
        str, typer.Option(envvar="TICKETFLOW_SERVICES_HOST", help="where the services listen")
    ] = "127.0.0.1",
    url: Annotated[list[str] | None, typer.Option(help="service=url, e.g. sla=http://sla:8004 (repeatable)")] = None,
    timeout: float = 3.0,
) -> None:
    """Liveness and readiness of every service (exit 1 when one is not ready)."""
    rows = run(services.health(_ctx(context), services.urls(host, url or []), timeout))
    if not all(r["ready"] for r in rows):
        raise typer.Exit(1)


@app.command()
def rebuild(context: typer.Context, projection: str = "ticket_summaries") -> None:
    """Empty a read model and replay the whole event store into it, here, with a progress bar."""
    run(services.rebuild(_ctx(context), projection))


@desks_app.command("check")
def desks_check(context: typer.Context, directory: Annotated[Path | None, typer.Argument(
        help="[default: $TICKETFLOW_DESK_CONFIG_DIR or the packaged desks]")] = None) -> None:  # fmt: skip
    """Validate every desk file: `file:line: field: problem` for each problem (exit 1)."""
    code = services.check_desks(_ctx(context), directory)
    if code:
        raise typer.Exit(code)


@notifications_app.command("dead")
def notifications_dead(context: typer.Context, limit: int = 100) -> None:
    """Dead deliveries (given up) with their causes, oldest first."""
    from ticketflow.notifications.redrive import dead_deliveries
    from ticketflow.notifications.settings import NotificationsSettings

    rows = run(dead_deliveries(load_settings(NotificationsSettings), limit))
    table = [(r["idempotency_key"], r["channel"], r["recipient"], r["template"], r["attempts"],
              f"{r['updated_at']:%Y-%m-%d %H:%M:%S}", (r["last_error"] or "")[:80]) for r in rows]  # fmt: skip
    _ctx(context).table("dead deliveries", ("key", "channel", "recipient", "template", "tries", "since", "reason"),
                        table, rows)  # fmt: skip


@notifications_app.command("redrive")
def notifications_redrive(
    context: typer.Context,
    key: Annotated[list[str] | None, typer.Option(help="idempotency key of a dead delivery (repeatable)")] = None,
    all_dead: Annotated[bool, typer.Option("--all", help="the oldest --limit dead deliveries")] = False,
    limit: int = 100,
) -> None:
    """Send dead deliveries again after their cause is fixed; exit 1 if any failed again."""
    from ticketflow.notifications.domain.model import OutcomeStatus
    from ticketflow.notifications.redrive import redrive_deliveries
    from ticketflow.notifications.settings import NotificationsSettings

    if bool(key) == all_dead:
        raise typer.BadParameter("give --key (repeatable) or --all")
    done = run(redrive_deliveries(load_settings(NotificationsSettings), None if all_dead else key, limit))
    failed = sum(o.status is OutcomeStatus.DEAD_LETTER for o in done.outcomes)
    rows = [(o.key, o.status.value, o.reason or "") for o in done.outcomes]
    summary = {"redriven": len(done.outcomes), "dead_again": failed, "recorded": done.recorded}
    ctx = _ctx(context)
    title = (f"redriven: {len(rows)}, delivered: {len(rows) - failed}, dead again: {failed}, "
             f"outcome events recorded: {done.recorded}")  # fmt: skip
    ctx.table(title, ("key", "status", "reason"), rows, {**summary, "outcomes": done.outcomes})
    if failed:
        raise typer.Exit(1)


# -- the process ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error is one line on stderr (2: a wrong command line; 1: it failed)."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv) if argv is not None else None, prog_name="ticketflow",
                              standalone_mode=False)  # fmt: skip
        return result if isinstance(result, int) else 0
    except NoArgsIsHelpError as shown:  # `ticketflow`, `ticketflow dlq`: the help, not an error
        print(shown.ctx.get_help() if shown.ctx else "ticketflow --help")
        return 0
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        return _error("aborted", 1)
    except typer.TyperException as wrong:  # the command line (usage, a bad value)
        path = wrong.ctx.command_path if getattr(wrong, "ctx", None) else "ticketflow"  # type: ignore[attr-defined]
        return _error(f"{wrong.format_message()} (see: {path} --help)", 2)  # type: ignore[attr-defined]
    except SettingsError as bad:
        return _error("; ".join(str(bad).splitlines()), 2)
    except CliError as failed:
        return _error(str(failed), 1)
    except Exception as error:  # the broker or the database away, a bug: named, on one line
        return _error(f"{type(error).__name__}: {error}".replace("\n", " "), 1)


def _error(text: str, code: int) -> int:
    print(f"ticketflow: error: {text}", file=sys.stderr)
    return code


def entry() -> None:
    sys.exit(main())
