"""`python -m ticketflow.dashboard` runs the service (a bad setting or desk file stops it: exit 2)."""

from __future__ import annotations

import sys

from ticketflow.dashboard.main import build
from ticketflow.dashboard.settings import DashboardSettings
from ticketflow.deskconfig import DeskConfigError
from ticketflow.runtime.service import main as serve

if __name__ == "__main__":
    sys.exit(serve("dashboard", DashboardSettings, build, refusals=(DeskConfigError,)))
