"""`ticketflow` commands about the system around the tickets: Kafka (tail, lag, topics), the services'
health, the read model's rebuild, the desk files, notifications' dead deliveries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ticketflow.cli import kafka, services
from ticketflow.cli.root import (
    app,
    ctx_of,
    desks_app,
    notifications_app,
    run,
    topics_app,
)
from ticketflow.runtime.settings import load_settings

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
    run(kafka.tail(ctx_of(context), topics, from_beginning=from_beginning, limit=limit, idle_s=idle))


@app.command()
def lag(context: typer.Context, group: Annotated[list[str] | None, typer.Option(
        help="only these consumer groups (repeatable)")] = None) -> None:  # fmt: skip
    """Consumer lag per group and partition: committed offset, end offset, lag."""
    run(kafka.lag(ctx_of(context), group or []))


@topics_app.command("create")
def topics_create(context: typer.Context, replication_factor: Annotated[int, typer.Option(
        envvar="TICKETFLOW_KAFKA_REPLICATION_FACTOR")] = 1) -> None:  # fmt: skip
    """Create every declared topic that is missing (make topics; production: Strimzi KafkaTopics)."""
    run(kafka.create_topics(ctx_of(context), replication_factor))


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
    rows = run(services.health(ctx_of(context), services.urls(host, url or []), timeout))
    if not all(r["ready"] for r in rows):
        raise typer.Exit(1)


@app.command()
def rebuild(context: typer.Context, projection: str = "tickets") -> None:
    """Empty a read model and replay the whole event store into it, here, with a progress bar."""
    run(services.rebuild(ctx_of(context), projection))


@desks_app.command("check")
def desks_check(context: typer.Context, directory: Annotated[Path | None, typer.Argument(
        help="[default: $TICKETFLOW_DESK_CONFIG_DIR or the packaged desks]")] = None) -> None:  # fmt: skip
    """Validate every desk file: `file:line: field: problem` for each problem (exit 1)."""
    code = services.check_desks(ctx_of(context), directory)
    if code:
        raise typer.Exit(code)


@notifications_app.command("dead")
def notifications_dead(context: typer.Context, limit: int = 100) -> None:
    """Dead deliveries (given up) and unknown outcomes (sent, no answer) with their causes, oldest first."""
    from ticketflow.notifications.redrive import dead_deliveries
    from ticketflow.notifications.settings import NotificationsSettings

    rows = run(dead_deliveries(load_settings(NotificationsSettings), limit))
    table = [(r["idempotency_key"], r["status"], r["channel"], r["recipient"], r["template"], r["attempts"],
              f"{r['updated_at']:%Y-%m-%d %H:%M:%S}", (r["last_error"] or "")[:80]) for r in rows]  # fmt: skip
    columns = ("key", "status", "channel", "recipient", "template", "tries", "since", "reason")
    ctx_of(context).table("dead deliveries and unknown outcomes", columns, table, rows)


@notifications_app.command("redrive")
def notifications_redrive(
    context: typer.Context,
    key: Annotated[
        list[str] | None, typer.Option(help="key of a dead delivery or an unknown outcome (repeatable)")
    ] = None,
    all_dead: Annotated[
        bool, typer.Option("--all", help="the oldest --limit dead deliveries (never unknown ones)")
    ] = False,
    limit: int = 100,
) -> None:
    """Send dead deliveries again after their cause is fixed (an unknown outcome only by its key, after
    checking the chat); exit 1 if any failed again (dead or unknown)."""
    from ticketflow.notifications.redrive import redrive_deliveries
    from ticketflow.notifications.settings import NotificationsSettings

    if bool(key) == all_dead:
        raise typer.BadParameter("give --key (repeatable) or --all")
    done = run(redrive_deliveries(load_settings(NotificationsSettings), None if all_dead else key, limit))
    failed = done.failed
    rows = [(o.key, o.status.value, o.reason or "") for o in done.outcomes]
    summary = {"redriven": len(done.outcomes), "dead_or_unknown_again": failed, "recorded": done.recorded}
    ctx = ctx_of(context)
    title = (f"redriven: {len(rows)}, delivered: {len(rows) - failed}, dead or unknown again: {failed}, "
             f"outcome events recorded: {done.recorded}")  # fmt: skip
    ctx.table(title, ("key", "status", "reason"), rows, {**summary, "outcomes": done.outcomes})
    if failed:
        raise typer.Exit(1)
