"""Who may open a ticket on a track (pure). The roles a track accepts come from desk configuration
(`[[tracks]] eligibility`); the requester's roles come from the platform (intake sets them).

Seeds: Bitrix24 box, «Чат с поддержкой доступен только администраторам портала»; eXpress, client
support for end users of the app, technical support under a service contract for the customer's
system administrators and partners. A refused requester gets a refusal with a reason code and a
message in their language, never a ticket (no SLA clock starts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ticketflow.deskconfig import Track

# Reason codes (stable, for templates and statistics).
NOT_PORTAL_ADMIN = "not_portal_admin"
NOT_CONTRACT_CONTACT = "not_contract_contact"
ROLE_NOT_ELIGIBLE = "role_not_eligible"
# Bitrix24 sends no admin flag; intake asks the portal (REST user.admin). When the portal could not be
# asked, "not an administrator" would be a false statement: the refusal says what really happened.
ADMIN_UNVERIFIED = "portal_admin_unverified"

_MESSAGES: dict[str, tuple[str, str]] = {
    NOT_PORTAL_ADMIN: (
        "Чат с поддержкой доступен только администраторам портала. Попросите администратора вашего "
        "портала Битрикс24 обратиться в поддержку.",
        "Support chat is available to portal administrators only. Please ask an administrator of your "
        "Bitrix24 portal to contact support.",
    ),
    NOT_CONTRACT_CONTACT: (
        "Техническая поддержка доступна по договору обслуживания только системным администраторам и "
        "партнёрам заказчика. Пользователям приложения помогает клиентская поддержка.",
        "Technical support is available under the service contract to the customer's system "
        "administrators and partners only. Users of the app are helped by client support.",
    ),
    ADMIN_UNVERIFIED: (
        "Не удалось проверить, что вы администратор портала: портал Битрикс24 не ответил на проверку. "
        "Напишите, пожалуйста, ещё раз через несколько минут. Если это повторится, проверьте, что "
        "приложение поддержки установлено на портале и портал доступен из интернета.",
        "We could not confirm that you are an administrator of the portal: your Bitrix24 portal did not "
        "answer our check. Please write again in a few minutes. If this repeats, make sure the support "
        "app is installed on the portal and the portal is reachable from the internet.",
    ),
    ROLE_NOT_ELIGIBLE: (
        "Эта линия поддержки недоступна для вашей роли. Обратитесь к администратору вашей организации.",
        "This support line is not available for your role. Please contact your organisation's administrator.",
    ),
}


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    code: str = ""  # "" when eligible
    messages: tuple[str, str] = ("", "")  # (ru, en)

    def message(self, locale: str) -> str:
        return self.messages[0] if locale.lower().startswith("ru") else self.messages[1]


ELIGIBLE = Eligibility(True)


def refusal_code(accepted: Iterable[str]) -> str:
    """The most specific reason for a track accepting only `accepted` roles."""
    roles = frozenset(accepted)
    if roles == {"portal_admin"}:
        return NOT_PORTAL_ADMIN
    if roles and roles <= {"system_admin", "partner"}:
        return NOT_CONTRACT_CONTACT
    return ROLE_NOT_ELIGIBLE


def effective_roles(platform: str, roles: Iterable[str]) -> frozenset[str]:
    """The requester's roles plus what the platform itself implies: everyone writing through the
    eXpress app is an end user of the app (BotX sends no role; intake passes `roles=()`), which is what
    client support asks for. Nothing is implied for Bitrix24: portal admins must be named as such."""
    implied = {"end_user"} if platform == "express" else set()
    return frozenset(roles) | implied


def check_eligibility(track: Track, roles: Iterable[str], admin_unverified: str | None = None) -> Eligibility:
    """Eligible when the requester holds at least one role the track accepts. `admin_unverified` (the
    reason intake could not ask the portal) turns "not an administrator" into "could not verify"."""
    if set(roles) & set(track.eligibility):
        return ELIGIBLE
    code = refusal_code(track.eligibility)
    if code == NOT_PORTAL_ADMIN and admin_unverified:
        code = ADMIN_UNVERIFIED
    return Eligibility(False, code, _MESSAGES[code])
