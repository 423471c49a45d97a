"""Logs: one JSON object per line on stderr, secrets redacted.

Every line has `time`, `level`, `service`, `logger` and `message`, the `trace_id` and `span_id` of the
work under way (OpenTelemetry's current span: a request, a record; also a forwarded, unsampled one),
and `ticket_id` / `event_id` while a consumer handles a record that names them
(`ticketflow.messaging.log_context`); an exception adds `exc_info`.

Why python-json-logger and not structlog: the code, uvicorn, aiokafka and FastStream all log through the
standard `logging` module, so one formatter on the root handler makes every line JSON without a second
logging API; its msgspec formatter reuses the JSON encoder the project already has. Context comes from
context variables read by a filter (`_Context`), the same way structlog's contextvars processor works.

Secrets never reach a line (`Redactor`): a DSN's password (`postgresql://user:***@host/db`, and
`password=` parameters), the values of the settings marked secret, and the values of every environment
variable whose name says it holds one (`*SECRET*`, `*TOKEN*`, `*PASSWORD*`, `*API_KEY*`) are
replaced by `***` in the message, in its arguments and in the traceback, before the line is written.
`TICKETFLOW_LOG_FORMAT=text` writes the same fields as plain text, for reading on a terminal."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.msgspec import MsgspecFormatter

from ticketflow.eventstore.connection import MASK, dsn_passwords, redact_dsn
from ticketflow.messaging.log_context import EVENT_ID, TICKET_ID

_SECRET_NAMES = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|APIKEY|PRIVATE_KEY")
MIN_SECRET = 4  # shorter values would mask ordinary words
# Libraries that install handlers of their own: their lines go through the root handler instead.
_OWN_HANDLERS = ("faststream", "uvicorn", "uvicorn.error", "uvicorn.access")


class Redactor:
    """Replaces known secret values and DSN passwords in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)
        self._values = re.compile("|".join(map(re.escape, values))) if values else None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], extra: Iterable[str] = ()) -> Redactor:
        """Every value of a variable named like a secret, the password inside each DSN, and `extra`."""
        found = list(extra)
        for name, value in environ.items():
            if _SECRET_NAMES.search(name.upper()) and value:
                found.append(value)
        for value in [*found, *environ.values()]:
            found += dsn_passwords(value)
        return cls(found)

    def __call__(self, text: str) -> str:
        if self._values is not None:
            text = self._values.sub(MASK, text)
        if "://" in text or "=" in text:
            text = redact_dsn(text)
        return text


class _Context(logging.Filter):
    """Adds the service, the trace, the ticket and the event; redacts the message."""

    def __init__(self, service: str, redact: Redactor) -> None:
        super().__init__()
        self.service = service
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        record.service = self.service
        span = trace.get_current_span().get_span_context()
        record.trace_id = f"{span.trace_id:032x}" if span.is_valid else None
        record.span_id = f"{span.span_id:016x}" if span.is_valid else None
        record.ticket_id = TICKET_ID.get()
        record.event_id = EVENT_ID.get()
        return True


class JsonLines(MsgspecFormatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__(
            "%(levelname)s %(service)s %(name)s %(message)s %(trace_id)s %(span_id)s %(ticket_id)s %(event_id)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601, UTC
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],  # uvicorn's copy with terminal colours
        )
        self.redact = redact

    def formatException(self, ei: Any) -> str:
        return self.redact(str(super().formatException(ei)))  # a string: exc_info_as_array is off

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class TextLines(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__(
            "%(asctime)s %(service)s %(levelname)s %(name)s: %(message)s [trace=%(trace_id)s ticket=%(ticket_id)s]"
        )
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def configure_logging(
    level: str,
    service: str,
    *,
    json: bool = True,
    secrets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Redactor:
    """The root handler of the process (stderr), for every logger; returns the redactor it uses."""
    redact = Redactor.from_environment(os.environ if environ is None else environ, secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Context(service, redact))
    handler.setFormatter(JsonLines(redact) if json else TextLines(redact))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in _OWN_HANDLERS:
        own = logging.getLogger(name)
        own.handlers, own.propagate = [], True
    return redact
