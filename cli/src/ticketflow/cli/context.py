"""What every command gets: where the broker and the database are (flags, else the environment, as the
services read them), Kafka client security from the environment, and how to print (rich, or JSON)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from ticketflow.messaging.security import KafkaSecurity
from ticketflow.runtime.settings import ServiceSettings


class CliSettings(ServiceSettings):
    """The command line reads the broker, its security and the database from the services' variables."""

    service = "ticketflow"


class CliError(Exception):
    """A problem the person can fix (a topic without a dead-letter topic, an unknown ticket): printed as
    one line, exit status 1."""


@dataclass
class Context:
    bootstrap: str
    pg_dsn: str
    security: KafkaSecurity
    json: bool = False
    ops_topic: str = "ops.commands"  # TICKETFLOW_OPS_COMMANDS_TOPIC, as the services read it
    ops_events_topic: str = "ops.events"
    console: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))

    def emit(self, data: Any, text: str | None = None) -> None:
        """`data` as one JSON document with --json, else `text` (or nothing)."""
        if self.json:
            sys.stdout.write(json.dumps(msgspec.to_builtins(data), ensure_ascii=False, default=str) + "\n")
        elif text is not None:
            self.console.print(text, markup=False)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], data: Any = None) -> None:
        if self.json:
            self.emit(data if data is not None else [dict(zip(columns, row, strict=True)) for row in rows])
            return
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        self.console.print(table)
