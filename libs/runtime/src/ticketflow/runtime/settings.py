"""Settings from the environment (12-factor), with the project's local defaults."""

from __future__ import annotations

import os

import msgspec

SERVICE_PORTS = {
    "intake": 8001,
    "preflight": 8002,
    "routing": 8003,
    "sla": 8004,
    "notifications": 8005,
    "projector": 8006,
}


class Settings(msgspec.Struct, frozen=True):
    service: str
    kafka_bootstrap: str = "127.0.0.1:9092"
    pg_dsn: str = "postgresql://ticketflow:ticketflow@127.0.0.1:5432/ticketflow"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    otel_console: bool = False
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, service: str) -> Settings:
        env = os.environ
        return cls(
            service=service,
            kafka_bootstrap=env.get("TICKETFLOW_KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            pg_dsn=env.get("TICKETFLOW_PG_DSN", cls.pg_dsn),
            http_host=env.get("TICKETFLOW_HTTP_HOST", cls.http_host),
            http_port=int(env.get(f"TICKETFLOW_{service.upper()}_PORT", SERVICE_PORTS.get(service, 8000))),
            otel_console=env.get("TICKETFLOW_OTEL_CONSOLE", "") == "1",
            log_level=env.get("TICKETFLOW_LOG_LEVEL", "INFO"),
        )
