"""`python -m ticketflow.preflight`: read the settings and the desk files, then serve."""

from __future__ import annotations

import sys

from ticketflow.deskconfig import DeskConfigError
from ticketflow.preflight.adapters.checks import ConfigError
from ticketflow.preflight.main import build
from ticketflow.preflight.settings import PreflightSettings
from ticketflow.runtime.service import run
from ticketflow.runtime.settings import SettingsError, load_settings


def main() -> int:
    try:
        service = build(load_settings(PreflightSettings))
    except (SettingsError, DeskConfigError, ConfigError, OSError, ValueError) as error:
        print(f"preflight: refusing to start: {error}", file=sys.stderr)
        return 2
    run(service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
