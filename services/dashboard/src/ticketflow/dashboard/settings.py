"""The dashboard's settings (TICKETFLOW_DASHBOARD_*), besides the ones every service reads."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ticketflow.contracts.topics import TICKET_COMMANDS
from ticketflow.runtime.settings import SERVICE_PORTS, ServiceSettings, prefixed


class DashboardSettings(ServiceSettings):
    model_config = prefixed("dashboard")
    service = "dashboard"

    port: int = Field(SERVICE_PORTS["dashboard"], ge=1, le=65535, description="HTTP port: the pages and health")
    queries_url: str = Field(
        f"http://127.0.0.1:{SERVICE_PORTS['queries']}",
        min_length=1,
        description="the query API the pages read from, with the visitor's own token",
    )
    commands_topic: str = Field(TICKET_COMMANDS, min_length=1, description="where agents' commands are sent")
    action_wait_s: float = Field(
        8.0, gt=0, le=60, description="how long an action waits to see its command applied before saying so"
    )
    live_wait_ms: int = Field(
        10_000,
        ge=100,
        le=60_000,
        description="the live stream's longest wait for a change before it refreshes (at most the query API's "
        "TICKETFLOW_QUERIES_MAX_WAIT_MS)",
    )
    secure_cookie: bool = Field(False, description="mark the session cookie Secure (behind HTTPS)")
    pool_size: int = Field(4, ge=1, le=100, description="PostgreSQL connections (reading ticket streams)")
    desk_config_dir: str = Field(
        "",
        validation_alias="TICKETFLOW_DESK_CONFIG_DIR",
        description="folder of desk configuration files (*.toml); empty: the packaged desks (calendars for "
        "the time left in business time)",
    )

    def desk_folder(self) -> Path | None:
        """The desk configuration folder (None: the packaged desks)."""
        return Path(self.desk_config_dir) if self.desk_config_dir else None
