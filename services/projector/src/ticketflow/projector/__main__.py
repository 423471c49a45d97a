"""`python -m ticketflow.projector` runs the service; `python -m ticketflow.projector rebuild` empties
the read models and replays the whole event store into them, with a progress bar."""

from __future__ import annotations

import asyncio
import sys

from ticketflow.eventstore import EventStore
from ticketflow.projector.app import Projector
from ticketflow.projector.main import build
from ticketflow.projector.settings import ProjectorSettings
from ticketflow.runtime.service import run
from ticketflow.runtime.settings import SettingsError, load_settings
from ticketflow.runtime.tracing import TracingSettingsError


async def rebuild(settings: ProjectorSettings) -> int:
    import asyncpg

    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        applied = await Projector(EventStore(pool)).rebuild(show_progress=True)
    finally:
        await pool.close()
    print(f"rebuilt the read models from {applied} events")
    return 0


def main(argv: list[str]) -> int:
    try:
        settings = load_settings(ProjectorSettings)
    except SettingsError as error:
        print(f"projector: refusing to start:\n{error}", file=sys.stderr)
        return 2
    if argv == ["rebuild"]:
        return asyncio.run(rebuild(settings))
    if argv:
        print(f"usage: python -m ticketflow.projector [rebuild]   (got {argv})", file=sys.stderr)
        return 2
    try:
        run(build(settings))
    except TracingSettingsError as error:
        print(f"projector: refusing to start: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
