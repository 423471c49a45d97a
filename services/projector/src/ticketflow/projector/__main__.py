"""`python -m ticketflow.projector` runs the service; `python -m ticketflow.projector rebuild [NAME ...]`
rebuilds read models (all without names) into copies of their tables and swaps them in, with a progress bar
and an estimate, while the service may keep running. A bad setting or desk file stops either (exit 2)."""

from __future__ import annotations

import asyncio
import sys

import asyncpg
from tqdm import tqdm

from ticketflow.deskconfig import DeskConfigError, load_desks
from ticketflow.eventstore.rebuild import RebuildInProgress, RebuildProgress
from ticketflow.projector.app import UnknownReadModel, rebuild
from ticketflow.projector.main import build
from ticketflow.projector.settings import ProjectorSettings
from ticketflow.runtime.service import main as serve
from ticketflow.runtime.settings import SettingsError, load_settings

USAGE = "usage: python -m ticketflow.projector [rebuild [READ_MODEL ...]]"


async def rebuild_with_progress(settings: ProjectorSettings, names: list[str]) -> int:
    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=2, max_size=3)
    assert pool is not None
    bars: dict[str, tqdm] = {}  # type: ignore[type-arg]

    def show(progress: RebuildProgress) -> None:
        bar = bars.get(progress.projection)
        if bar is None:
            bar = bars[progress.projection] = tqdm(total=progress.total, unit="ev", desc=progress.projection)
        bar.update(progress.applied - bar.n)

    try:
        reports = await rebuild(pool, load_desks(settings.desk_folder()), names,
                                batch_size=settings.projection_batch, progress=show)  # fmt: skip
    except (UnknownReadModel, RebuildInProgress) as error:
        print(f"projector: {error}", file=sys.stderr)
        return 2
    finally:
        for bar in bars.values():
            bar.close()
        await pool.close()
    for report in reports:
        print(f"rebuilt {report.projection}: {report.applied} events in {report.seconds:.1f} s, swapped in at "
              f"position {report.checkpoint.position}")  # fmt: skip
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        return serve("projector", ProjectorSettings, build, refusals=(DeskConfigError,))
    if argv[0] != "rebuild":
        print(f"{USAGE}   (got {argv})", file=sys.stderr)
        return 2
    try:
        settings = load_settings(ProjectorSettings)
        return asyncio.run(rebuild_with_progress(settings, argv[1:]))
    except (SettingsError, DeskConfigError) as error:
        print(f"projector: refusing to rebuild:\n{error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
