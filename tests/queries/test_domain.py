"""The queries service's pure part: token grants and principals, parameters, cursors, at-risk cutoffs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from queries_world import DESKS

from ticketflow.queries.domain import cursor, history, risk
from ticketflow.queries.domain.params import BadRequest
from ticketflow.queries.domain.routes import route_params
from ticketflow.queries.domain.tokens import (
    TokenConfigError,
    TokenGrant,
    grant_toml,
    grants,
    new_token,
    parse_grants,
    token_hash,
)

HOUR = timedelta(hours=1)
PARAMS = route_params(sorted(DESKS.desks), max_limit=500, max_wait_ms=10_000)


def test_a_token_is_found_by_its_hash_and_carries_its_scopes_and_agent() -> None:
    token = new_token()
    configured = parse_grants(grant_toml("anna", token, ["agent:express", "read:bitrix24-box"], "anna"), None)
    assert configured == [TokenGrant("anna", token_hash(token), ("agent:express", "read:bitrix24-box"), "anna")]
    principal = grants(configured, DESKS.desks).principal(token)
    assert principal is not None
    assert (principal.reads, principal.acts_on, principal.agent_id) == (
        frozenset({"express", "bitrix24-box"}), frozenset({"express"}), "anna"
    )  # fmt: skip
    assert principal.can_act("express") and not principal.can_act("bitrix24-box")
    assert grants(configured, DESKS.desks).principal(token + "x") is None
    everything = grants(parse_grants(None, f'[{{"name": "ops", "sha256": "{"0" * 64}", "scopes": ["read:*"]}}]'),
                        DESKS.desks)  # fmt: skip
    assert len(everything) == 1


def test_a_token_expires_at_its_time_and_an_expiry_without_a_time_zone_is_refused() -> None:
    token = new_token()
    at = datetime(2027, 1, 31, 18, 0, tzinfo=timezone(timedelta(hours=3)))
    entry = grant_toml("anna", token, ["agent:express"], "anna", expires_at=at)
    principal = grants(parse_grants(entry, None), DESKS.desks).principal(token)
    assert principal is not None and principal.expires_at == at
    assert not principal.expired(at - timedelta(seconds=1)) and principal.expired(at)
    naive = f'[{{"name": "x", "sha256": "{"0" * 64}", "scopes": ["read:*"], "expires_at": "2027-01-31T18:00:00"}}]'
    with pytest.raises(TokenConfigError, match="expires_at needs a time zone"):
        grants(parse_grants(None, naive), DESKS.desks)


def test_grants_it_cannot_use_are_refused_each_named() -> None:
    bad = [
        TokenGrant("a", "1" * 64, ("read:nowhere",)),
        TokenGrant("b", "2" * 64, ("agent:express",)),
        TokenGrant("c", "3" * 64, ("read:express",), "c"),
        TokenGrant("d", "4" * 64, ("agent:*",), "d"),
        TokenGrant("e", "5" * 64, ()),
        TokenGrant("f", "5" * 64, ("read:*",)),
    ]
    with pytest.raises(TokenConfigError) as raised:
        grants(bad, DESKS.desks)
    lines = str(raised.value).splitlines()
    assert sorted({line.split("'")[1] for line in lines}) == ["a", "b", "c", "d", "e", "f"]
    with pytest.raises(TokenConfigError, match="not valid TOML"):
        parse_grants("[[tokens]", None)
    with pytest.raises(TokenConfigError, match="sha256"):
        parse_grants('[[tokens]]\nname = "x"\nsha256 = "secret"\nscopes = []\n', None)


def test_unknown_repeated_and_out_of_range_parameters_are_refused_by_name() -> None:
    tickets = PARAMS.tickets
    parsed = tickets.parse([("status", "routed,closed,routed"), ("limit", "7")])
    assert (parsed["status"], parsed["limit"], parsed["sort"], parsed["wait_ms"]) == (
        ("routed", "closed"), 7, "-opened_at", 2000
    )  # fmt: skip
    for items, name in (
        ([("colour", "red")], "colour"),
        ([("limit", "1"), ("limit", "2")], "limit"),
        ([("limit", "0")], "limit"),
        ([("status", "new")], "status"),  # before preflight tickets are "opened"; "new" is no state a ticket has
        ([("q", "—")], "q"),
    ):
        with pytest.raises(BadRequest) as raised:
            tickets.parse(items)
        assert raised.value.parameter == name


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=6))
def test_any_query_string_is_parsed_or_refused_with_a_reason(items: list[tuple[str, str]]) -> None:
    for params in (PARAMS.tickets, PARAMS.sla_board, PARAMS.metrics, PARAMS.register):
        try:
            params.parse(items)
        except BadRequest as refused:
            assert refused.reason


def test_a_cursor_comes_back_only_for_what_it_was_issued_for() -> None:
    at, ticket = datetime(2026, 1, 5, 10, tzinfo=UTC), uuid.uuid4()
    issued = cursor.fingerprint("tickets", ("closed",), "-opened_at")
    text = cursor.encode(issued, (at, ticket))
    assert cursor.decode(text, issued, (datetime, uuid.UUID)) == (at, ticket)
    with pytest.raises(BadRequest, match="other filters"):
        cursor.decode(text, cursor.fingerprint("tickets", ("routed",), "-opened_at"), (datetime, uuid.UUID))
    for broken in ("", "!!!", text[:-3], cursor.encode(issued, ("yesterday", ticket)), cursor.encode(issued, (1,))):
        with pytest.raises(BadRequest, match="not a cursor"):
            cursor.decode(broken, issued, (datetime, uuid.UUID))


def test_at_risk_counts_business_minutes_a_closed_evening_is_not_counted() -> None:
    friday_1830_moscow = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
    cutoffs = risk.cutoffs(DESKS, "bitrix24-box", friday_1830_moscow, 60)
    # 30 minutes until 19:00, the other 30 on Monday from 10:00 Moscow time.
    assert cutoffs == {"box": datetime(2026, 11, 30, 7, 30, tzinfo=UTC)}
    express = risk.cutoffs(DESKS, "express", friday_1830_moscow, 60)
    assert express["technical-premium"] == datetime(2026, 11, 27, 16, 30, tzinfo=UTC)  # around the clock


def test_the_local_demo_reads_with_the_token_whose_hash_its_tokens_file_holds() -> None:
    from support.demo import ROOT, demo_secrets, load_demo

    tokens_file = ROOT / demo_secrets()["TICKETFLOW_QUERIES_TOKENS_FILE"]
    principal = grants(parse_grants(tokens_file.read_text(), None), DESKS.desks).principal(load_demo().DASHBOARD_TOKEN)
    assert principal is not None and principal.reads == frozenset(DESKS.desks)


def test_the_backlog_series_starts_from_what_waited_before_and_adds_each_hours_moves() -> None:
    hours = history.hours_ending(datetime(2026, 11, 23, 10, 59, tzinfo=timezone(timedelta(hours=3))), 3)
    assert hours == [datetime(2026, 11, 23, h, tzinfo=UTC) for h in (5, 6, 7)]
    moves = [("box-l1", hours[0], 2, 0), ("", hours[1], 1, 1), ("box-l1", hours[2], 0, 3), ("x", hours[0] - HOUR, 9, 0)]
    queues, total = history.backlog_series(hours, {"box-l1": 4, "gone": 0}, moves)
    assert [(q.queue_id, q.backlog, q.entered, q.exited) for q in queues] == [
        (None, [0, 0, 0], [0, 1, 0], [0, 1, 0]),  # waiting for routing: null, as the API says it
        ("box-l1", [6, 6, 3], [2, 0, 0], [0, 0, 3]),
    ]  # an hour outside the range is ignored; a queue with nothing before or during is left out
    assert (total.backlog, total.entered, total.exited) == ([6, 6, 3], [2, 1, 0], [0, 1, 3])


def test_response_buckets_follow_width_bucket_numbering() -> None:
    buckets = history.response_buckets((0, 60, 600), {1: 2, 3: 5, None: 7})
    assert [(b.from_seconds, b.to_seconds, b.tickets) for b in buckets] == [(0, 60, 2), (60, 600, 0), (600, None, 5)]
