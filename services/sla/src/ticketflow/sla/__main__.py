"""`python -m ticketflow.sla` runs the service."""

from __future__ import annotations

import sys

from ticketflow.runtime.service import run
from ticketflow.runtime.settings import SettingsError, load_settings
from ticketflow.sla.main import build
from ticketflow.sla.settings import SlaSettings


def main() -> int:
    try:
        settings = load_settings(SlaSettings)
    except SettingsError as error:
        print(f"sla: refusing to start:\n{error}", file=sys.stderr)
        return 2
    run(build(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
