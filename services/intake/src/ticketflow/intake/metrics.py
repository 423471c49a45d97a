"""Intake's own counters (prometheus_client), served with every other metric on the operations port.

`Metrics(REGISTRY)` in the service (main.py); `Metrics()` registers in a private registry, so tests that
build several intakes in one process count apart. Children are cached per label values: the webhook
path counts every request, and prometheus_client's `labels(...)` lookup is most of an increment's cost."""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry, Counter

COUNTERS = {
    "ticketflow_intake_rejected": (
        "Requests answered 4xx/5xx, by route and reason; nothing was written.",
        ("route", "reason"),
    ),
    "ticketflow_intake_accepted": ("Platform messages accepted (made durable), by platform.", ("platform",)),
    "ticketflow_intake_ignored": ("Accepted platform events that carry no customer message, by kind.", ("kind",)),
    "ticketflow_intake_processed": ("chat.inbound messages recorded into the store, by outcome.", ("outcome",)),
    "ticketflow_intake_admin_checks": (
        "Bitrix24 authors' admin flag settled, by outcome (admin, not_admin, cached, stale, stated by the "
        "portal, unverified).",
        ("outcome",),
    ),
    "ticketflow_intake_admin_unverified": (
        "Bitrix24 portals that could not be asked (user.admin), by reason.",
        ("reason",),
    ),
}

_REGISTERED: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]] = weakref.WeakKeyDictionary()


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        counters = _REGISTERED.get(self.registry)
        if counters is None:  # a registry takes each name once: a second intake built in a process shares them
            counters = _REGISTERED[self.registry] = {
                name: Counter(name, text, labels, registry=self.registry) for name, (text, labels) in COUNTERS.items()
            }
        self._counters = counters
        self._children: dict[tuple[str, tuple[str, ...]], Counter] = {}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        """`name` without `_total`, e.g. `inc("ticketflow_intake_accepted", platform="express")`."""
        key = (name, tuple(labels.values()))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._counters[name].labels(**labels)
        child.inc(amount)

    def value(self, name: str, **labels: str) -> int:
        return int(self.registry.get_sample_value(f"{name}_total", labels) or 0)

    def total(self, name: str) -> int:
        return int(sum(s.value for m in self._counters[name].collect() for s in m.samples if s.name.endswith("_total")))
