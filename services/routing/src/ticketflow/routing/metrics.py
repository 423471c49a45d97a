"""Routing's counters (prometheus_client), served with every other metric on the operations port.

`RoutingMetrics(REGISTRY)` in the service (leader.py: one per term, sharing the registry's counters);
`RoutingMetrics()` counts in a private registry (tests). Children are cached per label values: a decision
counts once or twice, and prometheus_client's `labels(...)` lookup is most of an increment's cost."""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry, Counter

COUNTERS = {
    "ticketflow_routing_routed": ("Tickets put in a queue, by queue and rule", ("queue", "rule")),
    "ticketflow_routing_assigned": ("Automatic assignments, by strategy", ("strategy",)),
    "ticketflow_routing_unmatched": ("Tickets no rule matched: sent to the fallback queue", ()),
    "ticketflow_routing_reassigned": ("Assignments taken away after no answer", ()),
    "ticketflow_routing_rejected_commands": ("Commands sent to ticket.commands.dlq", ()),
}
_REGISTERED: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]] = weakref.WeakKeyDictionary()


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        counters = _REGISTERED.get(self.registry)
        if counters is None:
            counters = _REGISTERED[self.registry] = {
                name: Counter(name, text, labels, registry=self.registry) for name, (text, labels) in COUNTERS.items()
            }
        self._counters = counters
        self._children: dict[tuple[str, ...], Counter] = {}

    def inc(self, name: str, *labels: str) -> None:
        key = (name, *labels)
        child = self._children.get(key)
        if child is None:
            counter = self._counters[name]
            child = self._children[key] = counter.labels(*labels) if labels else counter
        child.inc()

    def value(self, name: str, **labels: str) -> int:
        return int(self.registry.get_sample_value(f"{name}_total", labels) or 0)

    def total(self, name: str) -> int:
        """Summed over every label value."""
        return int(sum(s.value for m in self._counters[name].collect() for s in m.samples if s.name.endswith("_total")))
