"""Validated per-desk configuration (TOML decoded into msgspec Structs).

registry = load_desks()                        # $TICKETFLOW_DESK_CONFIG_DIR or the packaged desks
route = registry.route("bitrix24", member_id)  # desk + default track + contract tier of a tenant
calendar = registry.calendar("bitrix24-box", "box")
"""

from ticketflow.deskconfig.loader import (
    CONFIG_DIR_ENV,
    PACKAGED_DESKS,
    DeskConfigError,
    DeskRegistry,
    TenantRoute,
    load_desk_file,
    load_desks,
    parse_desk,
)
from ticketflow.deskconfig.locate import Problem
from ticketflow.deskconfig.model import (
    PRIORITIES,
    Bitrix24Portal,
    CalendarConfig,
    Desk,
    ExpressBot,
    GenericTenant,
    Notifications,
    Platform,
    Preflight,
    Priority,
    Queue,
    Role,
    Routing,
    RoutingRule,
    ScopeCategory,
    SlaPolicy,
    TicketFacts,
    Track,
)

__all__ = [
    "CONFIG_DIR_ENV",
    "PACKAGED_DESKS",
    "PRIORITIES",
    "Bitrix24Portal",
    "CalendarConfig",
    "Desk",
    "DeskConfigError",
    "DeskRegistry",
    "ExpressBot",
    "GenericTenant",
    "Notifications",
    "Platform",
    "Preflight",
    "Priority",
    "Problem",
    "Queue",
    "Role",
    "Routing",
    "RoutingRule",
    "ScopeCategory",
    "SlaPolicy",
    "TenantRoute",
    "TicketFacts",
    "Track",
    "load_desk_file",
    "load_desks",
    "parse_desk",
]
