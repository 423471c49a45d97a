"""The labelled duplicate set and precision/recall over it (pure score, SQL-only, SQL + score)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ticketflow.preflight.domain.duplicates import TicketText

LABELLED = Path(__file__).parent / "data" / "duplicates_labelled.json"
_IDS = uuid.UUID("7c1a3f5e-0000-4000-8000-000000000000")


@dataclass(frozen=True)
class OpenTicket:
    ticket_id: str
    organisation_id: str
    kind: str
    title: str
    body: str

    @property
    def uuid(self) -> uuid.UUID:
        return uuid.uuid5(_IDS, self.ticket_id)

    def as_text(self) -> TicketText:
        return TicketText(str(self.uuid), self.organisation_id, self.kind, f"{self.title}. {self.body}")


@dataclass(frozen=True)
class Query:
    query_id: str
    organisation_id: str
    kind: str
    text: str
    duplicates: tuple[str, ...]
    split: str

    def as_text(self) -> TicketText:
        return TicketText(f"new-{self.query_id}", self.organisation_id, self.kind, self.text)


@dataclass(frozen=True)
class Figures:
    precision: float
    recall: float
    queries: int


def load() -> tuple[list[OpenTicket], list[Query]]:
    document = json.loads(LABELLED.read_text(encoding="utf-8"))
    tickets = [OpenTicket(**t) for t in document["open_tickets"]]
    queries = [Query(**{**q, "duplicates": tuple(q["duplicates"])}) for q in document["queries"]]
    return tickets, queries


def figures(tickets: list[OpenTicket], queries: Iterable[Query], found: Callable[[Query], set[str]]) -> Figures:
    """`found(query)` returns ticket uuids (as str); expected duplicates are mapped the same way."""
    by_name = {t.ticket_id: str(t.uuid) for t in tickets}
    tp = fp = fn = n = 0
    for query in queries:
        expected = {by_name[name] for name in query.duplicates}
        got = found(query)
        tp, fp, fn, n = tp + len(got & expected), fp + len(got - expected), fn + len(expected - got), n + 1
    return Figures(precision=tp / max(tp + fp, 1), recall=tp / max(tp + fn, 1), queries=n)
