"""asyncpg's query spans (opentelemetry-instrumentation-asyncpg's), made only inside sampled work, and cheaply.

The instrumentation wraps every query: it strips comments off the SQL, builds its attributes and asks the
sampler, which drops the span when the work around it is not sampled (its provider's sampler is
parent-based with no roots, `tracing.setup_tracing`). That dropped span cost ~41 µs of CPU per query on
this machine at load average ~9 (`tests/load/telemetry/bench_span_costs.py`; with this gate ~5 µs), on
every query of the process: the consumers' batches, the relay's and the reply relay's polling. Here a
query whose current span is not sampled goes straight to asyncpg.

Inside sampled work a query is a span as the package makes it (its name, kind, attributes, built by the
package's own `_hydrate_span_from_args`; its scope; ERROR status when the query raised), recorded as a
finished span handed to the export processors, as `tracing.EdgeSpans` records HTTP spans: the SDK's live
span and context switching cost ~97 µs per query (the same script), and in an ordered batch that has one
sampled record every statement of the batch is traced. Cursors keep the package's own wrapper.
`tests/runtime/test_query_spans.py` checks these spans against the package's."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation._semconv import (
    _get_schema_url_for_signal_types,
    _OpenTelemetryStabilitySignalType,
    _report_new,
)
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor, _hydrate_span_from_args
from opentelemetry.instrumentation.asyncpg.version import __version__
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

SCOPE = InstrumentationScope(
    "opentelemetry.instrumentation.asyncpg", __version__,
    _get_schema_url_for_signal_types([_OpenTelemetryStabilitySignalType.DATABASE]),
)  # fmt: skip
_UNSET, _ERROR = Status(StatusCode.UNSET), Status(StatusCode.ERROR)
MAX_DESCRIPTIONS = 4096


def _sampled_only(wrapper: Callable[..., Any]) -> Callable[..., Any]:
    """The package's wrapper (self, wrapped, instance, args, kwargs) for sampled work, the bare call otherwise."""

    def gated(self: AsyncPGInstrumentor, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if not trace.get_current_span().get_span_context().trace_flags.sampled:
            return wrapped(*args, **kwargs)  # asyncpg's own awaitable: no span, no attributes
        return wrapper(self, wrapped, instance, args, kwargs)

    return gated


class SampledQueries(AsyncPGInstrumentor):  # type: ignore[misc]  # the package is untyped
    _instance = None  # BaseInstrumentor keeps one instance per class; else the package's could be returned
    _do_cursor_execute = _sampled_only(AsyncPGInstrumentor._do_cursor_execute)

    def _instrument(self, **kwargs: Any) -> None:
        """`instrument(tracer_provider=..., processors=[...], resource=...)`: the processors that export."""
        self.processors: Sequence[SpanProcessor] = kwargs.get("processors", ())
        self.resource: Resource = kwargs.get("resource") or Resource.get_empty()
        self._descriptions: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        super()._instrument(**kwargs)  # type: ignore[no-untyped-call]

    def _do_execute(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if not trace.get_current_span().get_span_context().trace_flags.sampled:
            return wrapped(*args, **kwargs)
        params = getattr(instance, "_params", None)
        name = args[0] if args[0] else getattr(params, "database", "postgresql")
        return self._recorded(wrapped(*args, **kwargs), name, instance, args[0])

    def _do_prepared_execute(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if not trace.get_current_span().get_span_context().trace_flags.sampled:
            return wrapped(*args, **kwargs)
        query = instance._query or ""
        return self._recorded(wrapped(*args, **kwargs), query, instance._connection, query)

    def _described(self, name: str, connection: Any, query: str | None) -> tuple[str, dict[str, Any]]:
        """The span's name and attributes, as the package derives them, once per server, database, user and
        statement (what they are derived from; the spans share the dict, which nothing changes after)."""
        params = getattr(connection, "_params", None)
        key = (getattr(connection, "_addr", None), getattr(params, "database", None), getattr(params, "user", None),
               name, query)  # fmt: skip
        found = self._descriptions.get(key)
        if found is None:
            if len(self._descriptions) >= MAX_DESCRIPTIONS:
                self._descriptions.clear()  # statements built per batch size: bounded, not unbounded
            parts = self._leading_comment_remover.sub("", name).split()
            mode = self._semconv_opt_in_mode
            attributes = _hydrate_span_from_args(connection, query, None, semconv_opt_in_mode=mode)
            found = self._descriptions[key] = (parts[0] if parts else "", attributes)
        return found

    async def _recorded(self, call: Any, name: str, connection: Any, query: str | None) -> Any:
        parent = trace.get_current_span().get_span_context()
        started = time.time_ns()
        failed: Exception | None = None
        try:
            return await call
        except Exception as error:
            failed = error
            raise
        finally:
            span_name, attributes = self._described(name, connection, query)
            if failed is not None and _report_new(self._semconv_opt_in_mode):
                attributes = {**attributes, ERROR_TYPE: type(failed).__qualname__}
            status = _UNSET if failed is None else _ERROR
            context = SpanContext(parent.trace_id, random.getrandbits(64) or 1, is_remote=False,
                                  trace_flags=parent.trace_flags, trace_state=parent.trace_state)  # fmt: skip
            span = ReadableSpan(name=span_name, context=context, parent=parent, resource=self.resource,
                                attributes=attributes, kind=SpanKind.CLIENT, status=status, start_time=started,
                                end_time=time.time_ns(), instrumentation_scope=SCOPE)  # fmt: skip
            for processor in self.processors:
                processor.on_end(span)
