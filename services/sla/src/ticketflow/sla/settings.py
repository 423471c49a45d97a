"""The SLA service's settings (TICKETFLOW_SLA_*, and the desk configuration directory), besides the
ones every service reads."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.runtime.settings import SERVICE_PORTS, ServiceSettings, prefixed


class SlaSettings(ServiceSettings):
    model_config = prefixed("sla")
    service = "sla"

    port: int = Field(SERVICE_PORTS["sla"], ge=1, le=65535, description="HTTP port: health, readiness and /sla/status")
    topic: str = Field(TICKET_EVENTS, min_length=1, description="the lifecycle topic consumed (ticket.events)")
    checkpoint_seconds: float = Field(
        5.0, gt=0, le=3600, description="seconds between partition checkpoints (what a restart replays at most)"
    )
    group_id: str = Field(
        "sla", min_length=1, description="Kafka consumer group: instances of one group split the partitions"
    )
    max_records: int = Field(
        500, ge=1, le=100_000, description="records per poll, decided in one pass (500 kept the poll p99 near 100 ms)"
    )
    desk_config_dir: str = Field(
        "",
        validation_alias="TICKETFLOW_DESK_CONFIG_DIR",
        description="folder of desk configuration files (*.toml); empty: the packaged desks",
    )

    def desk_folder(self) -> Path | None:
        """The desk configuration folder (None: the packaged desks)."""
        return Path(self.desk_config_dir) if self.desk_config_dir else None
