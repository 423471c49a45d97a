"""The settings every service that talks to Bitrix24 reads (intake, notifications, preflight), with one
name each across services (`TICKETFLOW_B24_*`): the same portal is called by all three, so it is judged by
the same rules. A service's settings class derives from `Bitrix24Settings` instead of `ServiceSettings`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, FilePath, field_validator
from pydantic_settings import NoDecode

from ticketflow.bitrix24.http import GuardedHttp
from ticketflow.bitrix24.oauth import DEFAULT_SERVER
from ticketflow.runtime.netguard import AddressPolicy, IPNetwork, parse_networks
from ticketflow.runtime.settings import ServiceSettings


class Bitrix24Settings(ServiceSettings):
    b24_oauth_server: str = Field(
        DEFAULT_SERVER, validation_alias="TICKETFLOW_B24_OAUTH_SERVER", pattern=r"^https://[^/?#@]+/?$",
        description="Bitrix24's OAuth server (token renewal, app.info), https://host[:port]",
    )  # fmt: skip
    b24_allowed_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        (), validation_alias="TICKETFLOW_B24_ALLOWED_NETWORKS",
        description="networks Bitrix24 portals may be in besides public addresses, comma-separated "
        "(e.g. `10.20.0.0/16`); empty: public addresses only",
    )  # fmt: skip
    b24_allowed_ports: Annotated[tuple[int, ...], NoDecode] = Field(
        (443,), validation_alias="TICKETFLOW_B24_ALLOWED_PORTS",
        description="ports a Bitrix24 portal or the OAuth server is called on, comma-separated",
    )  # fmt: skip
    b24_ca_file: FilePath | None = Field(
        None, validation_alias="TICKETFLOW_B24_CA_FILE",
        description="a PEM bundle of CAs trusted for Bitrix24 portals besides the system's",
    )  # fmt: skip
    b24_timeout: float = Field(
        10.0, gt=0, le=120, validation_alias="TICKETFLOW_B24_TIMEOUT",
        description="seconds one REST or OAuth request to Bitrix24 may take, in all",
    )  # fmt: skip
    b24_install_ttl: float = Field(
        5.0, ge=0, le=60, validation_alias="TICKETFLOW_B24_INSTALL_TTL",
        description="seconds a process trusts its copy of a portal's install (an uninstall is seen within it)",
    )  # fmt: skip

    @field_validator("b24_ca_file", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("b24_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        return parse_networks(value) if isinstance(value, str) else value

    @field_validator("b24_allowed_ports", mode="before")
    @classmethod
    def _ports(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.split(",") if part.strip())
        return value

    def b24_http(self) -> GuardedHttp:
        return GuardedHttp(
            policy=AddressPolicy(self.b24_allowed_networks), allowed_ports=frozenset(self.b24_allowed_ports),
            ca_file=self.b24_ca_file, timeout_s=self.b24_timeout,
        )  # fmt: skip
