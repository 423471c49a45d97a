"""The projector's settings (TICKETFLOW_PROJECTOR_*), besides the ones every service reads."""

from __future__ import annotations

from pydantic import Field

from ticketflow.runtime.settings import SERVICE_PORTS, ServiceSettings, prefixed


class ProjectorSettings(ServiceSettings):
    model_config = prefixed("projector")
    service = "projector"

    port: int = Field(SERVICE_PORTS["projector"], ge=1, le=65535, description="HTTP port: health and the dashboard API")
    relay: bool = Field(
        True, description="relay the event store's log to Kafka in this process (one relay leads at a time)"
    )
    relay_name: str = Field(
        "",
        description="the relay's leader lock, Kafka transactional id and checkpoint group, one per event store "
        "(empty: ticketflow-relay.<database name>)",
    )
    relay_batch: int = Field(5000, ge=1, le=100_000, description="events published per Kafka transaction")
    projection_batch: int = Field(1000, ge=1, le=100_000, description="events applied per read-model transaction")
    relay_topics: dict[str, str] = Field(
        default_factory=dict,
        description='the relay publishes a declared topic to another name, as JSON: {"ticket.events": "..."} '
        "(a system beside another on one broker: tests, side-by-side environments)",
    )
