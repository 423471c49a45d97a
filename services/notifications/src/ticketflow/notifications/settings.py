"""The notifications service's settings (TICKETFLOW_NOTIFICATIONS_*), besides the ones every service reads.

The channel accounts and the staff directory are a TOML file of the service's own (`config`, see
`adapters.directory`); the secrets it names are environment variables listed in that file, read when
the channels are built. The desks are `TICKETFLOW_DESK_CONFIG_DIR` (`ticketflow.deskconfig`); Bitrix24
portals are reached through their installs with the `TICKETFLOW_B24_*` settings (`ticketflow.bitrix24`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from ticketflow.bitrix24.access import Bitrix24Settings
from ticketflow.contracts.topics import CHAT_REPLIES, TICKET_EVENTS
from ticketflow.runtime.gc_tuning import BATCH_CONSUMER_THRESHOLDS, GcThresholds
from ticketflow.runtime.settings import SERVICE_PORTS, prefixed


class NotificationsSettings(Bitrix24Settings):
    model_config = prefixed("notifications")
    service = "notifications"

    port: int = Field(SERVICE_PORTS["notifications"], ge=1, le=65535, description="HTTP port: health and readiness")
    pool_size: int = Field(
        2, ge=1, le=500,
        description="connections of the runtime's pool (readiness only; the work uses TICKETFLOW_NOTIFICATIONS_POOL)",
    )  # fmt: skip
    pool: int = Field(
        24, ge=2, le=500,
        description="connections of the service's own pool (ledger and store; no reset query per release)",
    )  # fmt: skip
    config: str = Field(
        "", description="channel accounts and staff directory (a TOML file); empty: the packaged config/local.toml"
    )
    desk_config_dir: str = Field(
        "", validation_alias="TICKETFLOW_DESK_CONFIG_DIR",
        description="the desk configuration files' directory (ticketflow.deskconfig); empty: the packaged desks",
    )  # fmt: skip
    parallel: int = Field(
        64, ge=1, le=4096,
        description="tickets (conversations) handled at once per batch (those beyond a busy destination's slots wait)",
    )  # fmt: skip
    per_destination: int = Field(
        64, ge=1, le=4096,
        description="deliveries at once on one destination (a bot, a portal, a relay); more wait, and consumption too",
    )  # fmt: skip
    send_deadline_seconds: float = Field(
        20.0,
        gt=0,
        description="hard deadline of one send attempt; after it the outcome is unknown (never resent to a chat)",
    )
    lease_seconds: float = Field(
        120.0, gt=0, description="a delivery's claim lasts this long past its last attempt; longer than the deadline"
    )
    recover_seconds: float = Field(
        60.0, gt=0, description="how often claims whose worker went away are finished (and dead letters redriven)"
    )
    auto_redrive_seconds: float = Field(
        300.0, ge=0, description="dead letters of temporary causes older than this are redriven; 0: never"
    )
    gc_thresholds: GcThresholds = Field(
        BATCH_CONSUMER_THRESHOLDS,
        description="garbage-collector thresholds after start-up (runtime.gc_tuning); '700,10,10' is CPython's",
    )  # fmt: skip
    topic: str = Field(TICKET_EVENTS, min_length=1, description="the ticket events topic")
    group: str = Field("notifications", min_length=1, description="the consumer group of the ticket events")
    replies_topic: str = Field(CHAT_REPLIES, min_length=1, description="the bot's replies outside the lifecycle")
    replies_group: str = Field("notifications.replies", min_length=1, description="the consumer group of the replies")

    @model_validator(mode="after")
    def _deadline_within_lease(self) -> NotificationsSettings:
        if self.send_deadline_seconds >= self.lease_seconds:
            raise ValueError(
                "TICKETFLOW_NOTIFICATIONS_SEND_DEADLINE_SECONDS must be shorter than"
                " TICKETFLOW_NOTIFICATIONS_LEASE_SECONDS (a send must end before its claim can be taken over)"
            )
        return self

    @property
    def config_file(self) -> Path | None:
        return Path(self.config) if self.config else None

    @property
    def desk_directory(self) -> Path | None:
        return Path(self.desk_config_dir) if self.desk_config_dir else None
