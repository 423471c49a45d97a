"""Wiring: desk configuration, the stable-versions feed, the event store, the broker.

Run: `python -m ticketflow.preflight` (port TICKETFLOW_PREFLIGHT_PORT, default 8002). Desk files are
validated first; a broken one (or a broken feed file) stops the process with the problem.
Environment:
- TICKETFLOW_DESK_CONFIG_DIR: desk files (default: the packaged desks);
- TICKETFLOW_PREFLIGHT_STABLE_VERSIONS: a TOML or JSON file `module = "version"`, the latest stable
  Bitrix24 module versions for the updates check. Without it a desk's `stable_versions_feed` is used
  when it names a local file; a URL feed is not fetched (no parser for 1C-Bitrix's page), so the
  updates check is reported as skipped, not passed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from ticketflow.deskconfig import Desk, DeskConfigError, DeskRegistry, load_desks
from ticketflow.eventstore import EventStore
from ticketflow.preflight.checks import ChecksConfig, ConfigError, SystemResolver
from ticketflow.preflight.desk_rules import checks_config_for, scope_for
from ticketflow.preflight.handlers import PreflightHandlers, subscribe
from ticketflow.preflight.service import PreflightService
from ticketflow.runtime.kafka import DeadLetters
from ticketflow.runtime.service import Service, new_service, run

log = logging.getLogger("ticketflow.preflight")
STABLE_VERSIONS_ENV = "TICKETFLOW_PREFLIGHT_STABLE_VERSIONS"


def read_stable_versions(path: Path) -> dict[str, str]:
    """`{"main": "25.100.300", ...}` from a .json file, or `main = "25.100.300"` lines of TOML."""
    text = path.read_text(encoding="utf-8")
    data: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f'{path}: expected module = "version" pairs')
    return {str(k): v for k, v in data.items()}


def stable_versions_for(desk: Desk) -> dict[str, str]:
    configured = os.environ.get(STABLE_VERSIONS_ENV)
    if configured:
        return read_stable_versions(Path(configured))
    feed = desk.preflight.stable_versions_feed
    if feed and not feed.startswith(("http://", "https://")):
        return read_stable_versions(Path(feed))
    if feed and desk.preflight.checks:
        log.warning("preflight: desk %s: feed %s is not fetched; the updates check is skipped", desk.id, feed)
    return {}


def production_checks_configs(desks: DeskRegistry) -> dict[str, ChecksConfig]:
    """Every desk's checks configuration, built (and so validated) at start-up."""
    return {desk.id: checks_config_for(desk, stable_versions_for(desk)) for desk in desks.desks.values()}


def build(desks: DeskRegistry | None = None) -> Service:
    desks = desks or load_desks()
    configs = production_checks_configs(desks)
    for desk in desks.desks.values():
        scope_for(desk)  # a bad scope rule stops start-up, not the first ticket
    service = new_service("preflight")
    handlers = PreflightHandlers(DeadLetters(service.broker, "preflight"))
    subscribe(service.broker, handlers)

    async def start() -> None:
        assert service.pool is not None
        handlers.attach(
            PreflightService(EventStore(service.pool), desks, SystemResolver(), lambda desk: configs[desk.id])
        )

    service.on_start.append(start)
    return service


def main() -> None:
    try:
        service = build()
    except (DeskConfigError, ConfigError, OSError, ValueError) as error:
        print(f"preflight: refusing to start: {error}", file=sys.stderr)
        sys.exit(2)
    run(service)


if __name__ == "__main__":
    main()
