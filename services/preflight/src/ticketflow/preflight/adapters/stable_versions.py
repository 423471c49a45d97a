"""The stable-versions feed of the updates check, read from a file at start-up (a broken file stops it)."""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Any

from ticketflow.deskconfig import Desk
from ticketflow.preflight.adapters.checks import ConfigError

log = logging.getLogger(__name__)


def read_stable_versions(path: Path) -> dict[str, str]:
    """`{"main": "25.100.300", ...}` from a .json file, or `main = "25.100.300"` lines of TOML."""
    text = path.read_text(encoding="utf-8")
    data: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f'{path}: expected module = "version" pairs')
    return {str(k): v for k, v in data.items()}


def stable_versions_for(desk: Desk, configured: Path | None) -> dict[str, str]:
    """The configured file, else the desk's `stable_versions_feed` when it is a local file. A URL feed is
    not fetched (no parser for 1C-Bitrix's page): the updates check is then reported skipped, not passed."""
    if configured is not None:
        return read_stable_versions(configured)
    feed = desk.preflight.stable_versions_feed
    if feed and not feed.startswith(("http://", "https://")):
        return read_stable_versions(Path(feed))
    if feed and desk.preflight.checks:
        log.warning("preflight: desk %s: feed %s is not fetched; the updates check is skipped", desk.id, feed)
    return {}
