"""Schema migrations: numbered SQL files per component, applied once each, in order.

Components are the event store itself (first) and every `ticketflow.<name>` package that ships a
`migrations/` folder (services own their read-model tables). Applied versions are recorded in
`schema_migrations`; a changed file that was already applied is an error, never re-run silently.
Run: `python -m ticketflow.eventstore.migrate` (make migrate)."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import pkgutil
import re
import sys
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import asyncpg

from ticketflow.eventstore.connection import dsn_from_env, redact_dsn

_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_ID = 7_242_001  # serialises concurrent migrators (several services starting at once)

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover() -> list[Migration]:
    """The event store's migrations first, then each other component's, alphabetically."""
    import ticketflow

    names = sorted(m.name for m in pkgutil.iter_modules(ticketflow.__path__))
    ordered = ["eventstore", *(n for n in names if n != "eventstore")]
    found: list[Migration] = []
    for component in ordered:
        importlib.import_module(f"ticketflow.{component}")
        folder = files(f"ticketflow.{component}") / "migrations"
        if folder.is_dir():
            found.extend(_read_folder(component, folder))
    return found


def _read_folder(component: str, folder: Traversable) -> list[Migration]:
    migrations = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        match = _FILE.match(entry.name)
        if match is None:
            if entry.name.endswith(".sql"):
                raise MigrationError(f"{component}/{entry.name}: name must look like 0001_what_it_does.sql")
            continue
        migrations.append(Migration(component, int(match.group(1)), entry.name, entry.read_text()))
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"{component}: migration numbers must run 1, 2, 3... without gaps: {versions}")
    return migrations


async def apply_all(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is missing, each file in its own transaction; returns what was applied."""
    pending = discover() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(_BOOKKEEPING)
        rows = await conn.fetch("SELECT component, version, checksum FROM schema_migrations")
        applied = {(r["component"], r["version"]): r["checksum"] for r in rows}
        done = []
        for m in pending:
            known = applied.get((m.component, m.version))
            if known is not None:
                if known != m.checksum:
                    raise MigrationError(f"{m.component}/{m.name} changed after it was applied; add a new file")
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)",
                    m.component,
                    m.version,
                    m.name,
                    m.checksum,
                )
            done.append(m)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)


async def _main() -> int:
    dsn = dsn_from_env()
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"migrate: cannot connect to PostgreSQL at {redact_dsn(dsn)}: {exc}\n  start it with `make infra-up`")
        return 1
    try:
        done = await apply_all(conn)
    except MigrationError as exc:
        print(f"migrate: {exc}")
        return 1
    finally:
        await conn.close()
    for m in done:
        print(f"applied {m.component}/{m.name}")
    print(f"migrate: schema is up to date ({len(done)} applied now)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
