"""The portal's own account of its license and module versions, and the verdicts drawn from it.

ASSUMPTION (see docs/preflight.md, "Portal information over REST"): the portal answers the REST method
`<portal_info_method>` (called with the install's tokens, `ticketflow.bitrix24`) in Bitrix24's envelope:

    {"result": {"LICENSE": "ru_corp", "LICENSE_TYPE": "corp", "LICENSE_DEMO": false,
                "LICENSE_ACTIVE_UNTIL": "2027-03-31",
                "MODULES": {"main": "25.100.300", "im": "25.0.100", ...}},
     "time": {...}}

and on error {"error": "CODE", "error_description": "..."}. This is the only module that knows the
shape; correct it here when the real answer is known.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

Version = tuple[int, ...]


class PortalInfoError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class PortalInfo:
    license_code: str
    license_demo: bool
    license_active_until: dt.date | None  # None: the portal reports no end date
    modules: Mapping[str, str]


def parse_version(text: str) -> Version:
    if not re.fullmatch(r"\d+(\.\d+)*", text.strip()):
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(part) for part in text.strip().split("."))


def parse_portal_info(body: bytes) -> PortalInfo:
    """The whole answer (`{"result": ...}` or `{"error": ...}`)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PortalInfoError("not_json", f"portal information is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise PortalInfoError("bad_portal_info", "the answer is not a JSON object")
    if "error" in document:
        description = document.get("error_description", "")
        raise PortalInfoError("rest_error", f"{document['error']}: {description}".strip(": "))
    return parse_portal_info_result(document.get("result"))


def parse_portal_info_result(result: object) -> PortalInfo:
    """The answer's `result` (what the REST client returns)."""
    if not isinstance(result, dict):
        raise PortalInfoError("bad_portal_info", "no 'result' object in the answer")
    license_code = result.get("LICENSE")
    modules = result.get("MODULES")
    if not isinstance(license_code, str) or not isinstance(modules, dict):
        raise PortalInfoError("bad_portal_info", "LICENSE or MODULES missing")
    until_raw = result.get("LICENSE_ACTIVE_UNTIL")
    try:
        until = dt.date.fromisoformat(until_raw) if isinstance(until_raw, str) and until_raw else None
    except ValueError as exc:
        raise PortalInfoError("bad_portal_info", f"LICENSE_ACTIVE_UNTIL: {exc}") from exc
    demo = (
        result.get("LICENSE_DEMO") is True
        or str(result.get("LICENSE_TYPE", "")).lower() == "demo"
        or license_code.lower().endswith("_demo")
    )
    return PortalInfo(
        license_code=license_code,
        license_demo=demo,
        license_active_until=until,
        modules={str(k): str(v) for k, v in modules.items()},
    )


def license_verdict(info: PortalInfo, today: dt.date) -> tuple[str, str]:
    """(reason, detail): reason "ok", "demo_license" or "license_expired"."""
    if info.license_demo:
        return "demo_license", f"license {info.license_code} is a demo license"
    if info.license_active_until is not None and info.license_active_until < today:
        return "license_expired", f"license {info.license_code} ended on {info.license_active_until}"
    return "ok", f"license {info.license_code}, active until {info.license_active_until or 'no end date'}"


def updates_verdict(info: PortalInfo, stable: Mapping[str, str]) -> tuple[str, str]:
    """(reason, detail): "ok" or "updates_missing" naming each module below the stable feed."""
    behind: list[str] = []
    for module, latest in sorted(stable.items()):
        installed = info.modules.get(module)
        if installed is None:
            continue  # a module the edition does not include is not an update to install
        try:
            if parse_version(installed) < parse_version(latest):
                behind.append(f"{module} {installed} < {latest}")
        except ValueError:
            behind.append(f"{module} {installed!r} (unreadable version)")
    if behind:
        return "updates_missing", "; ".join(behind)
    return "ok", f"{len(stable)} modules compared with the stable feed"
