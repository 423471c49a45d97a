"""`python -m ticketflow.notifications` runs the service; a bad setting, desk file or configuration file
stops it with the problem (exit 2)."""

from __future__ import annotations

import sys

from ticketflow.deskconfig import DeskConfigError
from ticketflow.notifications.adapters.directory import ConfigError
from ticketflow.notifications.main import build
from ticketflow.notifications.settings import NotificationsSettings
from ticketflow.runtime.service import run
from ticketflow.runtime.settings import SettingsError, load_settings


def main() -> int:
    try:
        service = build(load_settings(NotificationsSettings))
    except (SettingsError, DeskConfigError, ConfigError) as error:
        print(f"notifications: refusing to start:\n{error}", file=sys.stderr)
        return 2
    run(service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
