"""Intake's settings (TICKETFLOW_INTAKE_*), besides the ones every service reads."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ticketflow.bitrix24.access import Bitrix24Settings
from ticketflow.contracts.topics import CHAT_INBOUND, CHAT_REPLIES, TICKET_COMMANDS
from ticketflow.runtime.gc_tuning import BATCH_CONSUMER_THRESHOLDS, GcThresholds
from ticketflow.runtime.settings import SERVICE_PORTS, prefixed


class IntakeSettings(Bitrix24Settings):
    model_config = prefixed("intake")
    service = "intake"

    port: int = Field(SERVICE_PORTS["intake"], ge=1, le=65535, description="HTTP port: webhooks, health")
    tenants: Path | None = Field(
        None, description="a small TOML tenant file instead of the desk files (tests, small setups)"
    )
    accept: Literal["kafka", "store"] = Field(
        "kafka",
        description="when a webhook answers: `kafka` once the message is on chat.inbound, `store` once recorded",
    )
    consume: bool = Field(True, description="consume chat.inbound (and ticket.commands) in this process")
    topic: str = Field(CHAT_INBOUND, min_length=1, description="the chat.inbound topic (its dead letters: <topic>.dlq)")
    group: str = Field("ticketflow-intake", min_length=1, description="chat.inbound's consumer group")
    # Small batches keep webhook latency low when HTTP and the consumer share a process; a
    # consumer-only process records faster with 2000.
    batch: int = Field(1000, ge=1, le=100_000, description="chat.inbound records per batch, at most")
    lanes: int = Field(4, ge=1, le=64, description="concurrent transactions per chat.inbound batch")
    in_flight: int = Field(2, ge=1, le=16, description="chat.inbound batches recorded at once")
    noop: bool = Field(False, description="serve POST /noop, the do-nothing route benchmarks measure against")
    commands_topic: str = Field(
        TICKET_COMMANDS, description="agents' commands applied here; empty: not consumed in this process"
    )
    commands_group: str = Field("ticketflow-intake-commands", min_length=1, description="its consumer group")
    replies_topic: str = Field(
        CHAT_REPLIES, description="where the reply relay publishes; empty: no relay in this process"
    )
    b24_admin_check: bool = Field(
        True, description="ask Bitrix24 portals (REST user.admin) whether a message's author is an administrator"
    )
    b24_admin_timeout: float = Field(3.0, gt=0, le=60, description="seconds one admin check may take, in all")
    b24_admin_ttl: float = Field(600.0, ge=0, description="seconds an admin check's answer is kept")
    b24_events_url: str = Field(
        "", pattern=r"^(https?://\S+)?$",
        description="the public URL of this service's POST /bitrix24/events, given to the chat bot registered "
        "at install (imbot.register); empty: no bot is registered",
    )  # fmt: skip
    gc_thresholds: GcThresholds = Field(
        BATCH_CONSUMER_THRESHOLDS,
        description="garbage-collector thresholds, comma-separated (`700,10,10`: CPython's own); "
        "see ticketflow.runtime.gc_tuning",
    )

    @field_validator("tenants", mode="before")
    @classmethod
    def _tenants_unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value
