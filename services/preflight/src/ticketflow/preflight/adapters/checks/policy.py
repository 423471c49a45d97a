"""Which addresses preflight may contact, and the checks' configuration.

Preflight fetches URLs that customers type in, so it is an SSRF vector: it must never touch an internal
address. The production policy allows only globally routable unicast addresses (`ticketflow.runtime.netguard`,
shared with intake's Bitrix24 admin check). Tests, which run real HTTPS servers on 127.0.0.1, build
their `ChecksConfig` with a policy allowing 127.0.0.0/8; production configuration cannot express that
(`load_checks_config` has no key for it and refuses unknown keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ticketflow.deskconfig import Desk
from ticketflow.runtime.netguard import AddressPolicy, IPAddress, forbidden_reason

__all__ = [
    "PUBLIC_ONLY",
    "AddressPolicy",
    "ChecksConfig",
    "ConfigError",
    "IPAddress",
    "forbidden_reason",
    "load_checks_config",
]

PUBLIC_ONLY = AddressPolicy()


@dataclass(frozen=True)
class ChecksConfig:
    timeout_s: float = 5.0  # per check, including name resolution and redirects
    max_redirects: int = 5
    max_body_bytes: int = 256 * 1024
    pub_path: str = "/pub/"
    json_probe_path: str = "/rest/"
    # REST method the support app answers with license and module versions: see docs/preflight.md.
    portal_info_method: str = "ticketflow.portal.info"
    # Latest stable version per module (the "feed"); a portal below any of them misses updates.
    stable_versions: Mapping[str, str] = field(default_factory=dict)
    cache_ttl_passed_s: float = 600.0
    # Failures expire sooner: the administrator is fixing them and will ask again.
    cache_ttl_failed_s: float = 60.0
    user_agent: str = "ticketflow-preflight/0.1"
    address_policy: AddressPolicy = PUBLIC_ONLY
    # PEM of extra trusted CAs (tests' CA); production trusts the system store only.
    extra_trusted_ca_pem: str | None = None
    # The ports a portal URL (or a redirect) may name; None: any (tests' servers on random ports only:
    # a desk file always gives a list, 443 and 80 by default).
    allowed_ports: frozenset[int] | None = frozenset({443, 80})


_LOADABLE_KEYS = {
    "timeout_s": float,
    "max_redirects": int,
    "max_body_bytes": int,
    "pub_path": str,
    "json_probe_path": str,
    "portal_info_method": str,
    "cache_ttl_passed_s": float,
    "cache_ttl_failed_s": float,
    "user_agent": str,
}


class ConfigError(ValueError):
    pass


def load_checks_config(data: Mapping[str, Any]) -> ChecksConfig:
    """Build the production configuration from a desk configuration section.

    Unknown keys are errors, so a key that tries to widen the address policy or swap the trust store
    (`allow_loopback`, `address_policy`, `extra_trusted_ca_pem`, ...) is refused, never ignored.
    """
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key == "allowed_ports":
            if (
                not isinstance(raw, list | tuple)
                or not raw
                or not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in raw)
            ):
                raise ConfigError("allowed_ports must list port numbers (1-65535)")
            values[key] = frozenset(raw)
            continue
        if key == "stable_versions":
            if not isinstance(raw, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
            ):
                raise ConfigError("stable_versions must map module names to version strings")
            values[key] = dict(raw)
            continue
        kind = _LOADABLE_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"unknown or not configurable preflight check setting: {key!r}")
        if isinstance(raw, bool) or not isinstance(raw, kind | int if kind is float else kind):
            raise ConfigError(f"{key} must be {kind.__name__}")
        values[key] = kind(raw)
    config = ChecksConfig(**values)
    if config.timeout_s <= 0 or config.max_redirects < 0 or config.max_body_bytes < 1024:
        raise ConfigError("timeout_s must be > 0, max_redirects >= 0, max_body_bytes >= 1024")
    return config


def checks_config_for(desk: Desk, stable_versions: Mapping[str, str]) -> ChecksConfig:
    """The production checks configuration: public addresses only, the system trust store."""
    section = desk.preflight
    return load_checks_config(
        {
            "timeout_s": section.timeout_seconds,
            "cache_ttl_passed_s": float(section.cache_ttl_passed_seconds),
            "cache_ttl_failed_s": float(section.cache_ttl_failed_seconds),
            "allowed_ports": list(section.allowed_ports),
            "stable_versions": dict(stable_versions),
        }
    )
