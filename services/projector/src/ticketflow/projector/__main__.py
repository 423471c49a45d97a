"""`python -m ticketflow.projector` runs the service (a rebuild: `ticketflow rebuild`, or the
`RebuildProjection` operator command)."""

from __future__ import annotations

import sys

from ticketflow.projector.main import build
from ticketflow.projector.settings import ProjectorSettings
from ticketflow.runtime.service import main

if __name__ == "__main__":
    sys.exit(main("projector", ProjectorSettings, build))
