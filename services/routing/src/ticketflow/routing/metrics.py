"""Routing's counters (OpenTelemetry): a no-op until the runtime installs a meter provider."""

from __future__ import annotations

from opentelemetry import metrics


class RoutingMetrics:
    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("ticketflow.routing")
        self.routed = meter.create_counter("routing.tickets.routed", description="tickets put in a queue")
        self.assigned = meter.create_counter("routing.tickets.assigned", description="automatic assignments")
        self.unmatched = meter.create_counter(
            "routing.rules.unmatched", description="tickets no rule matched: sent to the fallback queue"
        )
        self.reassigned = meter.create_counter(
            "routing.tickets.reassigned", description="assignments taken away after no answer"
        )
        self.rejected_commands = meter.create_counter(
            "routing.commands.rejected", description="commands sent to ticket.commands.dlq"
        )
