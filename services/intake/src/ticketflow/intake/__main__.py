"""`python -m ticketflow.intake`: the service (what `make run` starts)."""

from __future__ import annotations

import sys

from ticketflow.intake.main import build
from ticketflow.intake.settings import IntakeSettings
from ticketflow.intake.tenants import ConfigError
from ticketflow.runtime.service import run
from ticketflow.runtime.settings import SettingsError, load_settings


def main() -> int:
    try:
        service = build(load_settings(IntakeSettings))
    except (SettingsError, ConfigError) as error:
        print(f"intake: refusing to start:\n{error}", file=sys.stderr)
        return 2
    run(service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
