"""`python -m ticketflow.routing`: refuses to start (exit 2) on a bad setting or desk file."""

from __future__ import annotations

import sys

from ticketflow.deskconfig import DeskConfigError
from ticketflow.routing.domain.config import ConfigError
from ticketflow.routing.main import build
from ticketflow.routing.settings import RoutingSettings
from ticketflow.runtime.service import main

if __name__ == "__main__":
    sys.exit(main("routing", RoutingSettings, build, refusals=(DeskConfigError, ConfigError)))
