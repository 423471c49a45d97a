"""`ticketflow`: every operator task in one command (typer for the commands and their help, rich for
tables, tqdm for the rebuild's progress bar; `--json` for scripts). Connection flags default to the services' own
variables (TICKETFLOW_KAFKA_BOOTSTRAP, TICKETFLOW_PG_DSN, TICKETFLOW_KAFKA_SECURITY_PROTOCOL and the
rest), so the command line reaches what the services reach. Every error is one line on stderr and a
non-zero exit status (2: the command line itself is wrong; 1: the operation could not be done)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer

from ticketflow.cli.context import CliSettings, Context
from ticketflow.runtime.settings import load_settings

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


def ctx_of(context: typer.Context) -> Context:
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
