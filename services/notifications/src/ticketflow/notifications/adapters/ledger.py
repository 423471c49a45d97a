"""The delivery ledger in PostgreSQL (`migrations/0001_deliveries.sql`).

Every statement is a single atomic UPDATE/INSERT guarded by `claimed_by`, so two workers can never
both own a key: a worker whose lease was taken over finds its next write matching no row and stops.

A claim is taken over when its lease expired, when it is the claimant's own (the engine knows none of
its tasks works on the key: a batch that came again after an outage), or at once when its worker is
gone: a worker registered in `notification_workers` whose liveness lock nobody holds (a killed process;
`adapters/liveness.py`, migration 0002).

The three writes of every delivery (claim, fence before the send, record delivered) are coalesced
across concurrent deliveries (`batching.Coalescer`, benchmark-driven: see there): one multi-row
statement per batch, with the same per-row conditions, so the guarantees are those of the single-row
statements. A batch that
PostgreSQL refuses for one row's data (say a NUL character) is retried row by row, so only that
delivery fails.
"""

from __future__ import annotations

import asyncio
import enum
import fnmatch
import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from ticketflow.notifications.adapters.batching import Coalescer
from ticketflow.notifications.domain.model import Channel, Notification


def migration_sql() -> list[tuple[str, str]]:
    """(file name, SQL) of this component's migrations, in order."""
    root = resources.files("ticketflow.notifications") / "migrations"
    files = sorted((e for e in root.iterdir() if e.name.endswith(".sql")), key=lambda e: e.name)
    return [(e.name, e.read_text(encoding="utf-8")) for e in files]


# The causes of a dead letter that was temporary (the destination down or slow), as LIKE patterns of its
# `last_error`: `temporary_dead_letters` redrives them automatically; every other cause waits for a person.
TEMPORARY_CAUSES = ("gave up after %", "destination backlog full%", "%more than we hold a delivery")


_TEMPORARY_SQL = " OR ".join(f"last_error LIKE '{cause}'" for cause in TEMPORARY_CAUSES)


def is_temporary_cause(reason: str) -> bool:
    """Whether a dead letter's reason is one `temporary_dead_letters` finds (`TEMPORARY_CAUSES`)."""
    return any(fnmatch.fnmatchcase(reason, cause.replace("%", "*")) for cause in TEMPORARY_CAUSES)


class ClaimStatus(enum.StrEnum):
    CLAIMED = "claimed"  # this worker owns the key now
    DELIVERED = "delivered"
    DEAD = "dead"
    UNKNOWN = "unknown"  # a request left, its outcome is unknown: not sent again automatically
    IN_FLIGHT = "in_flight"  # another worker holds a live lease


@dataclass(frozen=True, slots=True)
class Claim:
    status: ClaimStatus
    attempts: int = 0
    in_doubt: bool = False  # taken over with sending_since set: a worker may have sent it
    fenced: bool = False  # a fresh claim already marked as attempt 1, about to be sent (claim(fence=True))
    own: bool = False  # taken back from this claimant itself (the engine knows whether it may have sent)
    last_error: str | None = None
    provider_message_id: str | None = None


UNENCODABLE = "__unencodable__"


def encode_variables(variables: Any) -> str:
    """JSON for the ledger; datetimes and the like become text (and render as text later).

    Variables that cannot be stored at all (a circular structure) are replaced by a marker that the
    engine turns into a dead letter with the cause, rather than raising in the consumer.
    """
    try:
        as_dict = {str(k): v for k, v in dict(variables).items()}
        return json.dumps(as_dict, ensure_ascii=False, default=str, sort_keys=True)
    except (TypeError, ValueError) as exc:
        return json.dumps({UNENCODABLE: f"variables cannot be stored: {type(exc).__name__}: {exc}"})


# A fresh row may be fenced at once ($12: the engine is about to send; saves `begin_attempt`'s round
# trip). A taken-over row keeps its sending_since, which then says the previous worker was mid-send.
# xmax = 0 tells an inserted row from one updated by ON CONFLICT; `before` (the statement's snapshot:
# the row as it was) tells a claim of our own taken back from one of another worker.
_CLAIM = """
WITH before AS (SELECT claimed_by FROM notification_deliveries WHERE idempotency_key = $1),
claimed AS (
INSERT INTO notification_deliveries AS d
    (idempotency_key, event_id, recipient, channel, destination, address, template, locale, variables,
     status, claimed_by, lease_until, attempts, sending_since)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, 'sending', $10, now() + make_interval(secs => $11),
        CASE WHEN $12::bool THEN 1 ELSE 0 END, CASE WHEN $12::bool THEN now() END)
ON CONFLICT (idempotency_key) DO UPDATE
    SET claimed_by = EXCLUDED.claimed_by, lease_until = EXCLUDED.lease_until, updated_at = now()
    WHERE d.status = 'sending'
      AND (d.lease_until < now() OR d.claimed_by = EXCLUDED.claimed_by OR notification_worker_gone(d.claimed_by))
RETURNING idempotency_key, attempts, xmax = 0 AS inserted, sending_since IS NOT NULL AS sending)
SELECT c.*, coalesce((SELECT claimed_by = $10 FROM before), false) AS own FROM claimed c
"""


_CLAIM_MANY = """
WITH before AS (SELECT idempotency_key, claimed_by FROM notification_deliveries
                 WHERE idempotency_key = ANY($1::text[])),
claimed AS (
INSERT INTO notification_deliveries AS d
    (idempotency_key, event_id, recipient, channel, destination, address, template, locale, variables,
     status, claimed_by, lease_until, attempts, sending_since)
SELECT k, e, r, c, dst, a, t, l, v::jsonb, 'sending', $10, now() + make_interval(secs => $11),
       CASE WHEN f THEN 1 ELSE 0 END, CASE WHEN f THEN now() END
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::text[], $12::bool[]) AS u(k, e, r, c, dst, a, t, l, v, f)
 ORDER BY k
ON CONFLICT (idempotency_key) DO UPDATE
    SET claimed_by = EXCLUDED.claimed_by, lease_until = EXCLUDED.lease_until, updated_at = now()
    WHERE d.status = 'sending'
      AND (d.lease_until < now() OR d.claimed_by = EXCLUDED.claimed_by OR notification_worker_gone(d.claimed_by))
RETURNING idempotency_key, attempts, xmax = 0 AS inserted, sending_since IS NOT NULL AS sending)
SELECT c.*, coalesce(b.claimed_by = $10, false) AS own FROM claimed c LEFT JOIN before b USING (idempotency_key)
"""

_BEGIN_MANY = """
UPDATE notification_deliveries AS d
   SET attempts = d.attempts + 1, sending_since = now(), lease_until = now() + make_interval(secs => $3),
       updated_at = now()
  FROM unnest($1::text[]) AS u(k)
 WHERE d.idempotency_key = u.k AND d.claimed_by = $2 AND d.status = 'sending'
RETURNING d.idempotency_key, d.attempts
"""

_DELIVERED_MANY = """
UPDATE notification_deliveries AS d
   SET status = 'delivered', provider_message_id = u.p, delivered_at = now(), sending_since = NULL,
       claimed_by = NULL, lease_until = NULL, last_error = NULL, updated_at = now()
  FROM unnest($1::text[], $2::text[]) AS u(k, p)
 WHERE d.idempotency_key = u.k AND d.claimed_by = $3 AND d.status = 'sending'
RETURNING d.idempotency_key
"""

# A batch refused for one row's data (invalid text, a CHECK) is retried row by row.
_ROW_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


class PgLedger:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        lease_seconds: float = 120.0,
        claimant: str | None = None,
        max_batch: int = 500,
        max_inflight: int = 4,
    ):
        self._pool = pool
        self.lease_seconds = lease_seconds
        self.claimant = claimant or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        options: dict[str, Any] = {"max_batch": max_batch, "max_inflight": max_inflight}
        self._claims: Coalescer[tuple[Notification, bool], Claim] = Coalescer(self._claim_many, key=_key, **options)
        self._begins: Coalescer[str, int | None] = Coalescer(self._begin_many, key=_same, **options)
        self._delivered: Coalescer[tuple[str, str], bool] = Coalescer(self._delivered_many, key=_first, **options)

    def batch_counts(self) -> dict[str, tuple[int, int]]:
        """(statements, rows) per coalesced write, for tests and benchmarks."""
        return {
            "claim": (self._claims.batches, self._claims.items),
            "begin_attempt": (self._begins.batches, self._begins.items),
            "record_delivered": (self._delivered.batches, self._delivered.items),
        }

    async def claim(self, n: Notification, *, fence: bool = False) -> Claim:
        """Claim the key. With `fence`, a fresh claim is also the first attempt's fence (attempts = 1,
        in doubt until recorded), as if `begin_attempt` had been called: only when a send follows.
        A claim of this claimant's own is taken over too: the caller must know that none of its tasks
        works on the key (the engine keeps the keys it works on)."""
        return await self._claims.submit((n, fence))

    async def begin_attempt(self, key: str) -> int | None:
        """Fence and mark in-doubt just before a network call; None if the claim was lost."""
        return await self._begins.submit(key)

    async def record_delivered(self, key: str, provider_message_id: str) -> bool:
        return await self._delivered.submit((key, provider_message_id))

    async def _claim_many(self, batch: list[tuple[Notification, bool]]) -> list[Claim | BaseException]:
        if len(batch) == 1:
            return [await self._claim_one(*batch[0])]
        columns: list[list[str | None]] = [[] for _ in range(9)]
        for n, _ in batch:
            values = (n.key, n.event_id, n.recipient, n.channel.value, n.destination, n.address, n.template,
                      n.locale, encode_variables(n.variables))  # fmt: skip
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        try:
            fences = [fence for _, fence in batch]
            rows = await self._pool.fetch(_CLAIM_MANY, *columns, self.claimant, self.lease_seconds, fences)
        except _ROW_ERRORS:
            return list(await asyncio.gather(*(self._claim_one(*item) for item in batch), return_exceptions=True))
        claimed = {r["idempotency_key"]: _claimed(r) for r in rows}
        others = [n.key for n, _ in batch if n.key not in claimed]
        if others:
            existing = await self._pool.fetch(
                "SELECT idempotency_key, status, attempts, last_error, provider_message_id"
                " FROM notification_deliveries WHERE idempotency_key = ANY($1::text[])",
                others,
            )
            claimed.update((r["idempotency_key"], _existing(r)) for r in existing)
        results: list[Claim | BaseException] = []
        for n, fence in batch:
            found = claimed.get(n.key)
            results.append(found if found is not None else await self._claim_one(n, fence))  # vanished meanwhile
        return results

    async def _begin_many(self, keys: list[str]) -> list[int | BaseException | None]:
        if len(keys) == 1:
            return [await self._begin_one(keys[0])]
        rows = await self._pool.fetch(_BEGIN_MANY, keys, self.claimant, self.lease_seconds)
        attempts = {r["idempotency_key"]: r["attempts"] for r in rows}
        return [attempts.get(k) for k in keys]

    async def _delivered_many(self, batch: list[tuple[str, str]]) -> list[bool | BaseException]:
        if len(batch) == 1:
            return [await self._delivered_one(*batch[0])]
        keys, ids = [k for k, _ in batch], [p for _, p in batch]
        try:
            rows = await self._pool.fetch(_DELIVERED_MANY, keys, ids, self.claimant)
        except _ROW_ERRORS:
            return list(await asyncio.gather(*(self._delivered_one(k, p) for k, p in batch), return_exceptions=True))
        done = {r["idempotency_key"] for r in rows}
        return [k in done for k in keys]

    async def _claim_one(self, n: Notification, fence: bool = False) -> Claim:
        row = await self._pool.fetchrow(
            _CLAIM,
            n.key, n.event_id, n.recipient, n.channel.value, n.destination, n.address, n.template,
            n.locale, encode_variables(n.variables), self.claimant, self.lease_seconds, fence,
        )  # fmt: skip
        if row is not None:
            return _claimed(row)
        existing = await self._pool.fetchrow(
            "SELECT status, attempts, last_error, provider_message_id FROM notification_deliveries"
            " WHERE idempotency_key = $1",
            n.key,
        )
        if existing is None:  # vanished between the two statements (manual cleanup): try again
            return await self._claim_one(n, fence)
        return _existing(existing)

    async def _begin_one(self, key: str) -> int | None:
        value: int | None = await self._pool.fetchval(
            "UPDATE notification_deliveries SET attempts = attempts + 1, sending_since = now(),"
            " lease_until = now() + make_interval(secs => $3), updated_at = now()"
            " WHERE idempotency_key = $1 AND claimed_by = $2 AND status = 'sending' RETURNING attempts",
            key, self.claimant, self.lease_seconds,
        )  # fmt: skip
        return value

    async def record_retry(self, key: str, reason: str, wait_seconds: float) -> bool:
        """The attempt failed for sure (not sent): clear in-doubt, keep the lease over the wait."""
        return await self._update(
            "sending_since = NULL, last_error = $3,"
            " lease_until = now() + make_interval(secs => $4)",
            key, reason, wait_seconds + self.lease_seconds,
        )  # fmt: skip

    async def _delivered_one(self, key: str, provider_message_id: str) -> bool:
        return await self._update(
            "status = 'delivered', provider_message_id = $3, delivered_at = now(), sending_since = NULL,"
            " claimed_by = NULL, lease_until = NULL, last_error = NULL",
            key, provider_message_id,
        )  # fmt: skip

    async def record_unknown(self, key: str, reason: str) -> bool:
        """A request left and its outcome is unknown: kept for a person, never sent again automatically."""
        return await self._update(
            "status = 'unknown', last_error = $3, sending_since = NULL, claimed_by = NULL, lease_until = NULL",
            key, reason,
        )  # fmt: skip

    async def record_dead(self, key: str, reason: str) -> bool:
        return await self._update(
            "status = 'dead', last_error = $3, sending_since = NULL, claimed_by = NULL, lease_until = NULL",
            key, reason,
        )  # fmt: skip

    async def _update(self, assignments: str, key: str, *args: Any) -> bool:
        """Apply `assignments` only while this worker still owns the key."""
        result: str = await self._pool.execute(
            f"UPDATE notification_deliveries SET {assignments}, updated_at = now()"
            " WHERE idempotency_key = $1 AND claimed_by = $2 AND status = 'sending'",
            key, self.claimant, *args,
        )  # fmt: skip
        return result.endswith(" 1")

    async def claim_dead(self, keys: Sequence[str] | None, limit: int) -> list[Notification]:
        """Atomically move dead letters back to 'sending' under this worker's claim, for redrive. Named
        `keys` may also be unknown outcomes (a person checked the chat: it did not arrive); without
        `keys`, only dead letters: an unknown outcome is never sent again blindly."""
        rows = await self._pool.fetch(
            """
            UPDATE notification_deliveries SET status = 'sending', claimed_by = $1, sending_since = NULL,
                   lease_until = now() + make_interval(secs => $2), updated_at = now()
             WHERE idempotency_key IN (
                   SELECT idempotency_key FROM notification_deliveries
                    WHERE CASE WHEN $3::text[] IS NULL THEN status = 'dead'
                               ELSE status IN ('dead', 'unknown') AND idempotency_key = ANY($3::text[]) END
                    ORDER BY updated_at LIMIT $4 FOR UPDATE SKIP LOCKED)
            RETURNING *
            """,
            self.claimant, self.lease_seconds, list(keys) if keys is not None else None, limit,
        )  # fmt: skip
        return [_notification(r) for r in rows]

    async def dead(self, limit: int) -> list[asyncpg.Record]:
        """The oldest `limit` dead letters and unknown outcomes with their causes (`ticketflow
        notifications dead`)."""
        rows: list[asyncpg.Record] = await self._pool.fetch(
            "SELECT idempotency_key, status, channel, recipient, template, attempts, last_error, updated_at"
            " FROM notification_deliveries WHERE status IN ('dead', 'unknown') ORDER BY updated_at LIMIT $1",
            limit,
        )
        return rows

    async def temporary_dead_letters(self, older_than: float, limit: int) -> list[str]:
        """Keys of dead letters whose cause was temporary (the destination down or slow: tries used up,
        backlog full, a Retry-After or an open circuit longer than a delivery is held) and that are
        `older_than` seconds old, oldest first. Permanent causes (credentials, addresses, templates,
        garbage answers) are not among them: they wait for a person."""
        rows = await self._pool.fetch(
            "SELECT idempotency_key FROM notification_deliveries WHERE status = 'dead'"
            " AND updated_at < now() - make_interval(secs => $1)"
            f" AND ({_TEMPORARY_SQL})"
            " ORDER BY updated_at LIMIT $2",
            older_than,
            limit,
        )
        return [r["idempotency_key"] for r in rows]

    async def stale(self, limit: int = 100) -> list[Notification]:
        """Claims whose worker went away (lease expired, or a registered worker's liveness lock is free):
        for `Deliverer.recover_stale`."""
        rows = await self._pool.fetch(
            "SELECT * FROM notification_deliveries WHERE status = 'sending'"
            " AND (lease_until < now() OR notification_worker_gone(claimed_by)) ORDER BY lease_until LIMIT $1",
            limit,
        )
        return [_notification(r) for r in rows]

    async def row(self, key: str) -> dict[str, Any] | None:
        record = await self._pool.fetchrow("SELECT * FROM notification_deliveries WHERE idempotency_key = $1", key)
        return dict(record) if record is not None else None


def _existing(r: asyncpg.Record) -> Claim:
    finished = {"delivered": ClaimStatus.DELIVERED, "dead": ClaimStatus.DEAD, "unknown": ClaimStatus.UNKNOWN}
    status = finished.get(r["status"], ClaimStatus.IN_FLIGHT)
    return Claim(status, r["attempts"], last_error=r["last_error"], provider_message_id=r["provider_message_id"])


def _claimed(r: asyncpg.Record) -> Claim:
    inserted, sending = r["inserted"], r["sending"]
    return Claim(ClaimStatus.CLAIMED, r["attempts"], in_doubt=sending and not inserted, fenced=sending and inserted,
                 own=r["own"])  # fmt: skip


def _key(item: tuple[Notification, bool]) -> str:
    return item[0].key


def _same(key: str) -> str:
    return key


def _first(pair: tuple[str, str]) -> str:
    return pair[0]


def _notification(r: asyncpg.Record) -> Notification:
    return Notification(
        key=r["idempotency_key"],
        event_id=r["event_id"],
        channel=Channel(r["channel"]),
        recipient=r["recipient"],
        destination=r["destination"],
        address=r["address"],
        template=r["template"],
        locale=r["locale"],
        variables=json.loads(r["variables"]),
    )
