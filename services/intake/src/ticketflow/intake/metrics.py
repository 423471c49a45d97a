"""Counters exposed in the Prometheus text format on GET /metrics (no client library needed for a
handful of labelled counters)."""

from __future__ import annotations

from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._help: dict[str, str] = {
            "intake_rejected_total": "Requests answered 4xx, by route and reason; nothing was written.",
            "intake_accepted_total": "Platform messages accepted (made durable), by platform.",
            "intake_ignored_total": "Accepted platform events that carry no customer message, by kind.",
            "intake_processed_total": "Messages processed into the store, by outcome.",
            "intake_dead_letters_total": "chat.inbound records sent to the dead-letter topic, by reason.",
            "intake_admin_checks_total": "Bitrix24 authors' admin flag settled, by outcome "
            "(admin, not_admin, cached, stale, stated by the portal, unverified).",
            "intake_admin_unverified_total": "Bitrix24 portals that could not be asked (user.admin), by reason.",
        }

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self._counts[(name, tuple(sorted(labels.items())))] += amount

    def value(self, name: str, **labels: str) -> int:
        return self._counts[(name, tuple(sorted(labels.items())))]

    def total(self, name: str) -> int:
        return sum(v for (n, _), v in self._counts.items() if n == name)

    def render(self) -> str:
        lines: list[str] = []
        for name, help_text in self._help.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            for (n, labels), value in sorted(self._counts.items()):
                if n == name:
                    rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{name}{{{rendered}}} {value}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
