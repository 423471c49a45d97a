"""asyncpg's query spans (opentelemetry-instrumentation-asyncpg), made only inside sampled work.

The instrumentation wraps every query: it strips comments off the SQL, builds ten attributes and asks the
sampler, which drops the span when the work around it is not sampled (its provider's sampler is
parent-based with no roots, `tracing.setup_tracing`). That dropped span cost ~41 µs of CPU per query on
this machine at load average ~9 (`tests/load/telemetry/bench_span_costs.py`; with this gate ~5 µs), on
every query of the process: the consumers'
batches, the relay's and the reply relay's polling. Here a query whose current span is not sampled goes
straight to asyncpg; inside sampled work the package's own wrapper makes the span, unchanged, so a
sampled trace keeps every query it ran. The spans that reach the exporter are the same either way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor


def _sampled_only(wrapper: Callable[..., Any]) -> Callable[..., Any]:
    """The package's wrapper (self, wrapped, instance, args, kwargs) for sampled work, the bare call otherwise."""

    def gated(self: AsyncPGInstrumentor, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if not trace.get_current_span().get_span_context().trace_flags.sampled:
            return wrapped(*args, **kwargs)  # asyncpg's own awaitable: no span, no attributes
        return wrapper(self, wrapped, instance, args, kwargs)

    return gated


class SampledQueries(AsyncPGInstrumentor):  # type: ignore[misc]  # the package is untyped
    _instance = None  # BaseInstrumentor keeps one instance per class; else the package's could be returned
    _do_execute = _sampled_only(AsyncPGInstrumentor._do_execute)
    _do_cursor_execute = _sampled_only(AsyncPGInstrumentor._do_cursor_execute)
    _do_prepared_execute = _sampled_only(AsyncPGInstrumentor._do_prepared_execute)
