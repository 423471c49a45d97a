"""Who may open a ticket, per desk and track, from the packaged desk files (domain.md, both seeds)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.deskconfig import DeskRegistry, Track, load_desks
from ticketflow.preflight.domain.eligibility import (
    ADMIN_UNVERIFIED,
    NOT_CONTRACT_CONTACT,
    NOT_PORTAL_ADMIN,
    ROLE_NOT_ELIGIBLE,
    check_eligibility,
    effective_roles,
)

ROLES = ("portal_admin", "end_user", "system_admin", "partner", "agent", "lead")
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)


@pytest.fixture(scope="module")
def desks() -> DeskRegistry:
    return load_desks()


# (desk, track, role) -> refusal code, or None when eligible
MATRIX = [
    # Bitrix24 box: «Чат с поддержкой доступен только администраторам портала.»
    ("bitrix24-box", "box", "portal_admin", None),
    ("bitrix24-box", "box", "end_user", NOT_PORTAL_ADMIN),
    ("bitrix24-box", "box", "system_admin", NOT_PORTAL_ADMIN),
    ("bitrix24-box", "box", "partner", NOT_PORTAL_ADMIN),
    # eXpress client support: end users of the app (and anyone above them).
    ("express", "client", "end_user", None),
    ("express", "client", "system_admin", None),
    ("express", "client", "partner", None),
    ("express", "client", "portal_admin", ROLE_NOT_ELIGIBLE),
    # eXpress technical support: system administrators and partners of the customer, under contract.
    ("express", "technical-standard", "system_admin", None),
    ("express", "technical-standard", "partner", None),
    ("express", "technical-standard", "end_user", NOT_CONTRACT_CONTACT),
    ("express", "technical-premium", "partner", None),
    ("express", "technical-premium", "end_user", NOT_CONTRACT_CONTACT),
]


@pytest.mark.parametrize(("desk", "track", "role", "refusal"), MATRIX)
def test_eligibility_matrix(desks: DeskRegistry, desk: str, track: str, role: str, refusal: str | None) -> None:
    decision = check_eligibility(desks.track(desk, track), (role,))
    assert decision.eligible is (refusal is None)
    assert decision.code == (refusal or "")


def test_nobody_without_roles_is_eligible_anywhere(desks: DeskRegistry) -> None:
    for desk in desks.desks.values():
        for track in desk.tracks:
            assert not check_eligibility(track, ()).eligible, (desk.id, track.id)


def test_a_refusal_speaks_the_requesters_language(desks: DeskRegistry) -> None:
    decision = check_eligibility(desks.track("bitrix24-box", "box"), ("end_user",))
    assert "администраторам портала" in decision.message("ru")
    assert CYRILLIC.search(decision.message("ru-RU"))
    assert "administrators" in decision.message("en") and not CYRILLIC.search(decision.message("en"))


@given(roles=st.sets(st.sampled_from(ROLES)), accepted=st.sets(st.sampled_from(ROLES[:4]), min_size=1))
def test_eligible_exactly_when_a_role_is_accepted(roles: set[str], accepted: set[str]) -> None:
    track = Track(id="t", name="t", calendar="c", eligibility=tuple(sorted(accepted)))  # type: ignore[arg-type]
    decision = check_eligibility(track, roles)
    assert decision.eligible is bool(roles & accepted)
    assert decision.eligible or (decision.code and all(decision.messages))


def test_a_portal_that_could_not_be_asked_is_not_called_a_non_administrator(desks: DeskRegistry) -> None:
    """Intake could not ask the portal (REST user.admin): the refusal says so instead of "admins only"."""
    box = desks.track("bitrix24-box", "box")
    decision = check_eligibility(box, (), "http_401: expired_token")
    assert (decision.eligible, decision.code) == (False, ADMIN_UNVERIFIED)
    assert "не ответил" in decision.message("ru") and "did not answer" in decision.message("en")
    assert check_eligibility(box, ()).code == NOT_PORTAL_ADMIN  # verified as a non-administrator
    assert check_eligibility(box, ("portal_admin",), "timeout").eligible  # a stated admin stays eligible
    tech = desks.track("express", "technical-standard")  # only the portal-admin refusal changes
    assert check_eligibility(tech, (), "timeout").code == NOT_CONTRACT_CONTACT


def test_an_express_sender_without_roles_is_an_end_user_of_the_app(desks: DeskRegistry) -> None:
    """BotX sends no role: client support accepts anyone writing through the app, technical support does not."""
    roles = effective_roles("express", ())
    assert check_eligibility(desks.track("express", "client"), roles).eligible
    assert check_eligibility(desks.track("express", "technical-standard"), roles).code == NOT_CONTRACT_CONTACT
    assert check_eligibility(
        desks.track("express", "technical-standard"), effective_roles("express", ("system_admin",))
    ).eligible


def test_nothing_is_implied_for_a_bitrix24_sender(desks: DeskRegistry) -> None:
    assert effective_roles("bitrix24", ()) == frozenset()
    assert (
        check_eligibility(desks.track("bitrix24-box", "box"), effective_roles("bitrix24", ())).code == NOT_PORTAL_ADMIN
    )
