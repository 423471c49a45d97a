"""Routing's own TOML format (one file, `[routing]` with queues, rules, calendars): the test fixture's.

The service reads desk files (`ticketflow.routing.desks`); this format shows what desk files do not say
yet and routing would use at once (skills per rule, skill fallback levels): `routing-fixture.toml`."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from ticketflow.routing.domain.config import ConfigError, Desks, RoutingConfig


def from_mapping(data: Mapping[str, Any], source: str = "<routing config>") -> Desks:
    """Decoded TOML to routing's Structs, validated (`Desks` checks the whole picture)."""
    try:
        config = msgspec.convert(data, RoutingConfig)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{source}: {error}") from error
    return Desks(config, source)


def load(path: Path) -> Desks:
    """Refuse a broken file, naming the file, the line (TOML syntax) or the field path."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from error
    return from_mapping(data.get("routing", data), str(path))
