"""Bitrix24 box portal prerequisite checks (seed: bitrix24-box-support.txt, "ВАЖНО").

Entry point for a handler:

    report = await run_portal_checks(PortalTarget(url=..., member_id=...), config, SystemResolver(), cache,
                                     ask=portal_rest_call, feed=await stable_feed.current())
    for failure in report.failures:
        reply(failure.remediation.for_language(user_language))
"""

from ticketflow.preflight.adapters.checks.cache import CheckCache
from ticketflow.preflight.adapters.checks.policy import (
    PUBLIC_ONLY,
    AddressPolicy,
    ChecksConfig,
    ConfigError,
    checks_config_for,
    load_checks_config,
)
from ticketflow.preflight.adapters.checks.runner import (
    PortalAsk,
    StableFeed,
    cache_key,
    check_portal_uncached,
    run_portal_checks,
)
from ticketflow.preflight.domain.checks import (
    CheckName,
    CheckResult,
    Evidence,
    Outcome,
    PortalCheckReport,
    PortalTarget,
    Remediation,
)
from ticketflow.runtime.netguard import NameNotResolvedError, Resolver, SystemResolver

__all__ = [
    "PUBLIC_ONLY",
    "AddressPolicy",
    "CheckCache",
    "CheckName",
    "CheckResult",
    "ChecksConfig",
    "ConfigError",
    "Evidence",
    "NameNotResolvedError",
    "Outcome",
    "PortalAsk",
    "PortalCheckReport",
    "PortalTarget",
    "Remediation",
    "Resolver",
    "StableFeed",
    "SystemResolver",
    "cache_key",
    "check_portal_uncached",
    "checks_config_for",
    "load_checks_config",
    "run_portal_checks",
]
