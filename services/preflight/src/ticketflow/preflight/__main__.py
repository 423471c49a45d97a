"""`python -m ticketflow.preflight`: read the settings and the desk files, then serve (exit 2 on a bad one)."""

from __future__ import annotations

import sys

from ticketflow.preflight.main import REFUSALS, build
from ticketflow.preflight.settings import PreflightSettings
from ticketflow.runtime.service import main

if __name__ == "__main__":
    sys.exit(main("preflight", PreflightSettings, build, refusals=REFUSALS))
