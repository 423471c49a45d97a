"""`python -m ticketflow.intake`: the service (what `make run` starts)."""

from __future__ import annotations

import sys

from ticketflow.intake.main import build
from ticketflow.intake.settings import IntakeSettings
from ticketflow.intake.tenants import ConfigError
from ticketflow.runtime.service import main

if __name__ == "__main__":
    sys.exit(main("intake", IntakeSettings, build, refusals=(ConfigError,)))
