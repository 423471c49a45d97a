"""`python -m ticketflow.notifications` runs the service; a bad setting, desk file or configuration file
stops it with the problem (exit 2)."""

from __future__ import annotations

import sys

from ticketflow.deskconfig import DeskConfigError
from ticketflow.notifications.adapters.directory import ConfigError
from ticketflow.notifications.main import build
from ticketflow.notifications.settings import NotificationsSettings
from ticketflow.runtime.service import main

if __name__ == "__main__":
    sys.exit(main("notifications", NotificationsSettings, build, refusals=(DeskConfigError, ConfigError)))
