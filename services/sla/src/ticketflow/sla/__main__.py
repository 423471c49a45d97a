"""`python -m ticketflow.sla` runs the service; a bad setting or desk file stops it with the problem (exit 2)."""

from __future__ import annotations

import sys

from ticketflow.runtime.service import main
from ticketflow.sla.main import REFUSALS, build
from ticketflow.sla.settings import SlaSettings

if __name__ == "__main__":
    sys.exit(main("sla", SlaSettings, build, refusals=REFUSALS))
