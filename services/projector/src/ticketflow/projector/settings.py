"""The projector's settings (TICKETFLOW_PROJECTOR_*, and the desk configuration directory), besides the
ones every service reads."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ticketflow.runtime.settings import SERVICE_PORTS, ServiceSettings, prefixed


class ProjectorSettings(ServiceSettings):
    model_config = prefixed("projector")
    service = "projector"

    port: int = Field(SERVICE_PORTS["projector"], ge=1, le=65535, description="HTTP port: health and readiness")
    relay: bool = Field(
        True, description="relay the event store's log to Kafka in this process (one relay leads at a time)"
    )
    relay_name: str = Field(
        "",
        description="the relay's leader lock, Kafka transactional id and checkpoint group, one per event store "
        "(empty: ticketflow-relay.<database name>)",
    )
    relay_batch: int = Field(5000, ge=1, le=100_000, description="events published per Kafka transaction")
    relay_max_record_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="a stored event's record over this goes to <topic>.dlq instead of stopping the relay "
        "(keep under the topics' max.message.bytes)",
    )
    projection_batch: int = Field(1000, ge=1, le=100_000, description="events applied per read-model transaction")
    relay_topics: dict[str, str] = Field(
        default_factory=dict,
        description='the relay publishes a declared topic to another name, as JSON: {"ticket.events": "..."} '
        "(a system beside another on one broker: tests, side-by-side environments)",
    )
    desk_config_dir: str = Field(
        "",
        validation_alias="TICKETFLOW_DESK_CONFIG_DIR",
        description="folder of desk configuration files (*.toml); empty: the packaged desks (calendars for "
        "business time, queues' tracks)",
    )

    def desk_folder(self) -> Path | None:
        """The desk configuration folder (None: the packaged desks)."""
        return Path(self.desk_config_dir) if self.desk_config_dir else None
