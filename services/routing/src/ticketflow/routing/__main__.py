"""`python -m ticketflow.routing`: refuses to start (exit 2) on a bad setting or desk file."""

from __future__ import annotations

import sys

from ticketflow.deskconfig import DeskConfigError
from ticketflow.routing.domain.config import ConfigError
from ticketflow.routing.main import build
from ticketflow.routing.settings import RoutingSettings
from ticketflow.runtime.service import run
from ticketflow.runtime.settings import SettingsError, load_settings


def main() -> int:
    try:
        service = build(load_settings(RoutingSettings))
    except SettingsError as error:
        print(f"routing: refusing to start:\n{error}", file=sys.stderr)
        return 2
    except (DeskConfigError, ConfigError) as error:
        print(f"routing: refusing to start: {error}", file=sys.stderr)
        return 2
    run(service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
