"""A small valid desk file; tests break one thing at a time and look for file:line: field."""

from __future__ import annotations

MINIMAL_DESK = """\
id = "acme"
name = "ACME support"
timezone = "Europe/Moscow"
default_locale = "ru"
languages = ["ru", "en"]

[[platforms.generic]]
tenant_id = "acme-helpdesk"
api_key_env = "ACME_INTAKE_KEY"
default_track = "general"

[[calendars]]
id = "office"
holiday_country = "RU"
[calendars.weekly]
mon = ["09:00-13:00", "14:00-18:00"]
tue = ["09:00-18:00"]

[[calendars]]
id = "night"
[calendars.weekly]
fri = ["22:00-02:00"]

[[tracks]]
id = "general"
name = "General"
calendar = "office"
eligibility = ["end_user"]
sla = false

[[tracks]]
id = "contract"
name = "Contract"
calendar = "night"
eligibility = ["system_admin", "partner"]

[[sla_policies]]
track = "contract"
priority = "urgent"
first_response_minutes = 30

[[sla_policies]]
track = "contract"
priority = "high"
first_response_minutes = 60

[[sla_policies]]
track = "contract"
priority = "normal"
first_response_minutes = 120

[[sla_policies]]
track = "contract"
priority = "low"
first_response_minutes = 240

[[queues]]
id = "l1"
track = "general"

[[queues]]
id = "l2"
track = "contract"
fallback = "l1"

[routing]
fallback_queue = "l1"

[[routing.rules]]
id = "contract"
queue = "l2"
track = ["contract"]

[notifications]
template_set = "acme"
locales = ["ru"]
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the n-th line containing `needle`."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]
