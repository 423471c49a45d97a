"""Value objects that events, commands and chat messages share."""

from __future__ import annotations

from typing import Literal

import msgspec

Platform = Literal["express", "bitrix24", "generic"]
Priority = Literal["urgent", "high", "normal", "low"]
Role = Literal["portal_admin", "end_user", "system_admin", "partner", "agent", "lead"]
SlaTarget = Literal["first_response", "next_response", "resolution"]
# What became of a feature request (eXpress seed: «взята в спринт, запланирована или отклонена»).
FeatureOutcome = Literal["in_sprint", "planned", "declined"]

PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")


class Requester(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who asked. Roles come from the platform (a Bitrix24 portal admin flag, a BotX `is_admin`)."""

    user_id: str
    display_name: str = ""
    locale: str = "ru"
    roles: tuple[Role, ...] = ()
    email: str | None = None
    # Bitrix24: why intake could not ask the portal whether the requester is an administrator (then
    # `portal_admin` is absent from roles although the requester may be one). None: roles are as stated.
    admin_unverified: str | None = None


class ChatRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where to answer: eXpress tenant = bot id, conversation = group chat id;
    Bitrix24 tenant = member_id, conversation = DIALOG_ID."""

    platform: Platform
    tenant_id: str
    conversation_id: str
    # Bitrix24: the portal's public address, "https://" + the event's `auth[domain]` (preflight checks
    # it; None: unknown, preflight falls back to the desk's `portal_domains`). Other platforms: None.
    portal_url: str | None = None


class Attachment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    mime_type: str = "application/octet-stream"
    size: int | None = None
    url: str | None = None


class CheckEvidence(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One preflight check's outcome with what it saw, so a failure can be argued with."""

    name: str
    passed: bool
    reason: str = ""
    remediation: dict[str, str] = {}
    evidence: dict[str, str] = {}
