"""What this process knows of its own claims that the ledger may not know yet.

The ledger is the truth across processes. Within one process, a database outage can cut in between a
decision and the write that records it (issue 16: PostgreSQL stopped under load), and the batch then
comes again. The delivery engine keeps, per idempotency key:

- `working`: a task of ours delivers it now. A second task for the same key answers IN_FLIGHT, and the
  ledger gives a claim of our own back (`claim`) only when no task of ours works on it.
- `may_have_sent`: a request for it left and no outcome is recorded. A claim of our own found again is
  in doubt only then: the ledger's `sending_since` cannot tell "fenced, then the database went away
  before the send" from "sent".
- `unwritten`: an outcome decided (delivered, dead, unknown) whose ledger write failed. When its record
  comes again (or the batch settles), the outcome is written and nothing is sent.

Entries leave when the ledger has the outcome; the sets are bounded by the deliveries an outage cuts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ticketflow.notifications.domain.model import DeliveryOutcome


@dataclass
class OwnClaims:
    working: set[str] = field(default_factory=set)
    may_have_sent: set[str] = field(default_factory=set)
    unwritten: dict[str, DeliveryOutcome] = field(default_factory=dict)

    def recorded(self, key: str) -> None:
        """The ledger has the key's outcome (or another worker owns the key now): nothing to remember."""
        self.may_have_sent.discard(key)
        self.unwritten.pop(key, None)
