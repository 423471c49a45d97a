"""Preflight's settings (TICKETFLOW_PREFLIGHT_*), besides the ones every service reads.

Desk files come from TICKETFLOW_DESK_CONFIG_DIR (read by `ticketflow.deskconfig`, shared by every service)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.runtime.settings import SERVICE_PORTS, ServiceSettings, prefixed


class PreflightSettings(ServiceSettings):
    model_config = prefixed("preflight")
    service = "preflight"

    port: int = Field(SERVICE_PORTS["preflight"], ge=1, le=65535, description="HTTP port: health and readiness")
    stable_versions: Path | None = Field(
        None,
        description='a TOML or JSON file `module = "version"`: the latest stable Bitrix24 module versions for '
        "the updates check (default: a desk's `stable_versions_feed` when it names a local file)",
    )
    topic: str = Field(TICKET_EVENTS, description="the topic of ticket events")
    group: str = Field("preflight", description="the consumer group")
    batch: int = Field(64, ge=1, le=5000, description="records per batch; tickets of a batch are examined at once")
