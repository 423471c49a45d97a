"""Settings from the environment (12-factor), with the project's local defaults."""

from __future__ import annotations

import os

import msgspec

from ticketflow.eventstore.connection import DEFAULT_DSN

SERVICE_PORTS = {
    "intake": 8001,
    "preflight": 8002,
    "routing": 8003,
    "sla": 8004,
    "notifications": 8005,
    "projector": 8006,
}


DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_PG_DSN = DEFAULT_DSN  # one default for every process (ticketflow.eventstore.connection)


class Settings(msgspec.Struct, frozen=True):
    service: str
    kafka_bootstrap: str = DEFAULT_KAFKA
    pg_dsn: str = DEFAULT_PG_DSN
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    otel_console: bool = False
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, service: str) -> Settings:
        env = os.environ
        return cls(
            service=service,
            kafka_bootstrap=env.get("TICKETFLOW_KAFKA_BOOTSTRAP", DEFAULT_KAFKA),
            pg_dsn=env.get("TICKETFLOW_PG_DSN", DEFAULT_PG_DSN),
            http_host=env.get("TICKETFLOW_HTTP_HOST", "127.0.0.1"),
            http_port=int(env.get(f"TICKETFLOW_{service.upper()}_PORT", SERVICE_PORTS.get(service, 8000))),
            otel_console=env.get("TICKETFLOW_OTEL_CONSOLE", "") == "1",
            log_level=env.get("TICKETFLOW_LOG_LEVEL", "INFO"),
        )
