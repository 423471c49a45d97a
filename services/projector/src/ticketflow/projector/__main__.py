"""`python -m ticketflow.projector` runs the service; `python -m ticketflow.projector rebuild`
empties the read models and replays the whole event store into them, with a progress bar."""

from __future__ import annotations

import asyncio
import sys

from ticketflow.eventstore import EventStore, create_pool
from ticketflow.eventstore.projections import ProjectionRunner
from ticketflow.projector.main import main
from ticketflow.projector.projection import TicketSummaries


async def rebuild() -> int:
    pool = await create_pool()
    try:
        applied = await ProjectionRunner(EventStore(pool), TicketSummaries()).rebuild(show_progress=True)
    finally:
        await pool.close()
    print(f"rebuilt ticket_summaries from {applied} events")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["rebuild"]:
        sys.exit(asyncio.run(rebuild()))
    elif sys.argv[1:]:
        sys.exit(f"usage: python -m ticketflow.projector [rebuild]   (got {sys.argv[1:]})")
    main()
