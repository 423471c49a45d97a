"""Preflight's settings (TICKETFLOW_PREFLIGHT_*), besides the ones every service reads.

Desk files come from TICKETFLOW_DESK_CONFIG_DIR (read by `ticketflow.deskconfig`, shared by every service);
Bitrix24 portals are asked through their installs with the `TICKETFLOW_B24_*` settings (`ticketflow.bitrix24`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ticketflow.bitrix24.access import Bitrix24Settings
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.runtime.settings import SERVICE_PORTS, prefixed


class PreflightSettings(Bitrix24Settings):
    model_config = prefixed("preflight")
    service = "preflight"

    port: int = Field(SERVICE_PORTS["preflight"], ge=1, le=65535, description="HTTP port: health and readiness")
    stable_versions: Path | None = Field(
        None,
        description='a TOML or JSON file `module = "version"`: the latest stable Bitrix24 module versions for '
        "the updates check (default: each desk's `stable_versions_feed`, a file or an https URL)",
    )
    feed_ttl: float = Field(
        21_600.0, gt=0, description="seconds a fetched stable-versions feed is kept before it is fetched again"
    )
    feed_retry: float = Field(300.0, gt=0, description="seconds after a failed feed fetch before it is tried again")
    topic: str = Field(TICKET_EVENTS, description="the topic of ticket events")
    group: str = Field("preflight", description="the consumer group")
    batch: int = Field(64, ge=1, le=5000, description="records per batch; tickets of a batch are examined at once")
