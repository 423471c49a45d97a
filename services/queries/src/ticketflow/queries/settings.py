"""The queries service's settings (TICKETFLOW_QUERIES_*, and the desk configuration directory), besides the
ones every service reads. Tokens are configured by their SHA-256 hashes only (docs/queries.md, "Tokens")."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ticketflow.runtime.settings import SERVICE_PORTS, ServiceSettings, prefixed


class QueriesSettings(ServiceSettings):
    model_config = prefixed("queries")
    service = "queries"

    port: int = Field(SERVICE_PORTS["queries"], ge=1, le=65535, description="HTTP port: health and the query API")
    tokens_file: str = Field(
        "", description="TOML file of token grants ([[tokens]] name, sha256, scopes, agent_id); empty: none"
    )
    tokens: str = Field("", description="token grants as a JSON list (same fields), added to the file's")
    max_limit: int = Field(500, ge=1, le=10_000, description="the largest page a client may ask for (limit)")
    max_wait_ms: int = Field(
        10_000, ge=0, le=60_000, description="the longest a client may wait for a position (wait_ms)"
    )
    desk_config_dir: str = Field(
        "",
        validation_alias="TICKETFLOW_DESK_CONFIG_DIR",
        description="folder of desk configuration files (*.toml); empty: the packaged desks",
    )

    def desk_folder(self) -> Path | None:
        """The desk configuration folder (None: the packaged desks)."""
        return Path(self.desk_config_dir) if self.desk_config_dir else None

    def tokens_path(self) -> Path | None:
        return Path(self.tokens_file) if self.tokens_file else None
