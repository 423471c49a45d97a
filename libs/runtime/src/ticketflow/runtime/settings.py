"""Settings from the environment, one typed object per service (pydantic-settings).

Every service's `settings.py` subclasses `ServiceSettings` with its own variables, read with the prefix
`TICKETFLOW_<SERVICE>_`; the variables every service shares (the broker, the database, the HTTP host,
logging) have fixed names. `load_settings` refuses a bad value with one line per variable, naming it:

    sla: TICKETFLOW_SLA_CHECKPOINT_SECONDS: Input should be a valid number (got 'often')

pydantic-settings, not hand-written parsing: types, bounds, booleans and durations are checked the same
way everywhere, and `docs/configuration.md` is generated from the same objects (`configdoc.py`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ticketflow.eventstore.connection import DEFAULT_DSN
from ticketflow.messaging.security import KafkaSecurity, Mechanism, Protocol

SERVICE_PORTS = {
    "intake": 8001,
    "preflight": 8002,
    "routing": 8003,
    "sla": 8004,
    "notifications": 8005,
    "projector": 8006,
    "queries": 8007,
    "dashboard": 8008,
}
OPS_PORT_OFFSET = 100  # the operations port, unless set: the service's HTTP port + 100
DEFAULT_KAFKA = "127.0.0.1:9092"
S = TypeVar("S", bound="ServiceSettings")


class SettingsError(ValueError):
    """One or more variables hold values the service cannot run with; the message names each one."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False, populate_by_name=True)
    service: ClassVar[str] = "service"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"pg_dsn", "kafka_sasl_password"})  # never printed

    kafka_bootstrap: str = Field(
        DEFAULT_KAFKA, validation_alias="TICKETFLOW_KAFKA_BOOTSTRAP", description="Kafka bootstrap servers"
    )
    kafka_security_protocol: Protocol = Field(
        "PLAINTEXT",
        validation_alias="TICKETFLOW_KAFKA_SECURITY_PROTOCOL",
        description="PLAINTEXT (development), SSL (TLS, mutual with a client certificate), SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_mechanism: Mechanism = Field(
        "SCRAM-SHA-512",
        validation_alias="TICKETFLOW_KAFKA_SASL_MECHANISM",
        description="SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
    )
    kafka_sasl_username: str = Field(
        "", validation_alias="TICKETFLOW_KAFKA_SASL_USERNAME", description="SASL user (SASL_* protocols)"
    )
    kafka_sasl_password: str = Field(
        "", validation_alias="TICKETFLOW_KAFKA_SASL_PASSWORD", repr=False, description="SASL password (a secret)"
    )
    kafka_ssl_ca_file: str = Field(
        "",
        validation_alias="TICKETFLOW_KAFKA_SSL_CA_FILE",
        description="CA certificate(s) to trust the brokers with (PEM; empty: the system's)",
    )
    kafka_ssl_cert_file: str = Field(
        "", validation_alias="TICKETFLOW_KAFKA_SSL_CERT_FILE", description="client certificate for mutual TLS (PEM)"
    )
    kafka_ssl_key_file: str = Field(
        "", validation_alias="TICKETFLOW_KAFKA_SSL_KEY_FILE", description="the client certificate's private key (PEM)"
    )
    kafka_replication_factor: int = Field(
        1,
        ge=1,
        le=10,
        validation_alias="TICKETFLOW_KAFKA_REPLICATION_FACTOR",
        description="replication factor of the topics a service creates (TICKETFLOW_ENSURE_TOPICS; development)",
    )
    pg_dsn: str = Field(
        DEFAULT_DSN, validation_alias="TICKETFLOW_PG_DSN", repr=False, description="PostgreSQL DSN (a secret)"
    )
    http_host: str = Field(
        "127.0.0.1", validation_alias="TICKETFLOW_HTTP_HOST", description="address the HTTP server listens on"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias="TICKETFLOW_LOG_LEVEL", description="log level"
    )
    log_format: Literal["json", "text"] = Field(
        "json", validation_alias="TICKETFLOW_LOG_FORMAT",
        description="json: one JSON object per line (service, level, trace and span ids, ticket and event ids); "
        "text: the same fields for a terminal",
    )  # fmt: skip
    metrics: bool = Field(
        True, validation_alias="TICKETFLOW_METRICS",
        description="Prometheus metrics on the operations port (/metrics), HTTP request metrics, consumer-lag and "
        "relay backlog measurements; false: none of them",
    )  # fmt: skip
    metrics_interval_seconds: float = Field(
        15.0, gt=0, validation_alias="TICKETFLOW_METRICS_INTERVAL_SECONDS",
        description="how often consumer lag and the relay's backlog are measured",
    )  # fmt: skip
    ensure_topics: bool = Field(
        True,
        validation_alias="TICKETFLOW_ENSURE_TOPICS",
        description="create missing topics at start-up (development; false where Strimzi manages the topics)",
    )
    ops_topic: str = Field(
        "ops.commands",
        validation_alias="TICKETFLOW_OPS_COMMANDS_TOPIC",
        description="topic of operators' commands (contracts.ops); empty: the service reads none",
    )
    ops_events_topic: str = Field(
        "ops.events", validation_alias="TICKETFLOW_OPS_EVENTS_TOPIC", description="topic of the answers to them"
    )
    port: int = Field(8000, ge=1, le=65535, description="HTTP port: health, readiness and the service's routes")
    ops_port: int | None = Field(
        None, ge=0, le=65535,
        description="operations port (GET /metrics, /health/live, /health/ready), apart from the public one: "
        "unset = the HTTP port + 100 (8101-8106); 0 = no operations port",
    )  # fmt: skip
    pool_size: int = Field(10, ge=1, le=500, description="PostgreSQL connections in the service's pool")

    @property
    def operations_port(self) -> int | None:
        """The operations port, or None when there is none."""
        if self.ops_port is None:
            return self.port + OPS_PORT_OFFSET if self.port + OPS_PORT_OFFSET <= 65535 else None
        return self.ops_port or None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_security_is_consistent(self) -> ServiceSettings:
        self.kafka_security()  # raises KafkaSecurityError (a ValueError: pydantic reports it)
        return self

    def kafka_security(self) -> KafkaSecurity:
        """Authentication and encryption of every Kafka client the service makes."""
        return KafkaSecurity(
            self.kafka_security_protocol, self.kafka_sasl_mechanism, self.kafka_sasl_username,
            self.kafka_sasl_password, self.kafka_ssl_ca_file, self.kafka_ssl_cert_file, self.kafka_ssl_key_file,
        )  # fmt: skip

    @classmethod
    def env_prefix(cls) -> str:
        return str(cls.model_config.get("env_prefix", ""))

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable a field is read from."""
        info = cls.model_fields[field]
        alias = info.validation_alias
        return alias if isinstance(alias, str) else (cls.env_prefix() + field).upper()


def prefixed(service: str) -> SettingsConfigDict:
    """The model_config of a service's settings: its variables are TICKETFLOW_<SERVICE>_<FIELD>."""
    return SettingsConfigDict(
        env_prefix=f"TICKETFLOW_{service.upper()}_",
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Read `cls` from the environment; `overrides` (tests, tools) win. Raises `SettingsError`."""
    try:
        return cls(**overrides)
    except ValidationError as error:
        raise SettingsError(_one_line_per_variable(cls, error)) from None


def _one_line_per_variable(cls: type[ServiceSettings], error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        if not problem["loc"]:  # a check across variables: its message names them
            lines.append(f"{cls.service}: {problem['msg'].removeprefix('Value error, ')}")
            continue
        name = str(problem["loc"][0])
        field = next((f for f in cls.model_fields if name in (f, cls.variable(f))), None)
        variable = cls.variable(field) if field else name
        shown = "(hidden)" if field in cls.secret_fields else repr(problem.get("input"))
        lines.append(f"{cls.service}: {variable}: {problem['msg']} (got {shown})")
    return "\n".join(lines)
