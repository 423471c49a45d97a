"""Routing's settings (TICKETFLOW_ROUTING_*, and the desk files' folder), besides the ones every service
reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from ticketflow.contracts.topics import AGENT_EVENTS, TICKET_COMMANDS, TICKET_EVENTS
from ticketflow.runtime.gc_tuning import BATCH_CONSUMER_THRESHOLDS, GcThresholds
from ticketflow.runtime.settings import SERVICE_PORTS, ServiceSettings, prefixed


class RoutingSettings(ServiceSettings):
    model_config = prefixed("routing")
    service = "routing"

    port: int = Field(SERVICE_PORTS["routing"], ge=1, le=65535, description="HTTP port: health and readiness")
    desk_config_dir: str = Field(
        "",
        validation_alias="TICKETFLOW_DESK_CONFIG_DIR",
        description="folder of the desk files (*.toml); empty: the packaged desks",
    )
    group: str = Field("ticketflow-routing", min_length=1, description="Kafka consumer group (the leader's)")
    event_topics: Annotated[tuple[str, ...], NoDecode] = Field(
        (TICKET_EVENTS, AGENT_EVENTS),
        min_length=1,
        description="topics of ticket and agent events, comma-separated (consumed in one order)",
    )
    commands_topic: str = Field(TICKET_COMMANDS, min_length=1, description="topic of manual overrides")
    tick_seconds: float = Field(
        15.0, gt=0, le=3600, description="clock: seconds between reassignment checks (unanswered assignments)"
    )
    store_parallel: int = Field(
        4, ge=1, le=64, description="store transactions one flush may have in flight (split by queue)"
    )
    leader_name: str = Field(
        "routing", min_length=1, description="leader lock: instances with the same name and database share one leader"
    )
    leader_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="how often a stand-by tries the lock and a leader checks it still holds it"
    )
    gc_thresholds: GcThresholds = Field(
        BATCH_CONSUMER_THRESHOLDS,
        description="garbage-collector thresholds once the state is rebuilt, comma-separated (`700,10,10`: "
        "CPython's own); see ticketflow.runtime.gc_tuning",
    )

    @property
    def desk_directory(self) -> Path | None:
        """The desk files' folder, None for the packaged desks."""
        return Path(self.desk_config_dir) if self.desk_config_dir else None

    @field_validator("event_topics", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(topic.strip() for topic in value.split(",") if topic.strip())
        return value
