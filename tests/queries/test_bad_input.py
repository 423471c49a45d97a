"""Bad input gets a 4xx with a JSON reason, never a 500, and a token never sees a ticket of a desk it does not
read: two desks, two tokens, every route."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queries_world import BOTH_TOKEN, BOX, BOX_TOKEN, EXPRESS, EXPRESS_AGENT_TOKEN, World, bearer, every_page

pytestmark = pytest.mark.pg

DESK_ROUTES = ("backlog", "sla-board", "agents", "metrics", "organisations", "backlog-history", "first-responses")


def refused(answer: httpx.Response, status: int, *mentions: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert isinstance(body["error"], str) and body["error"]
    for mention in mentions:
        assert mention in body["error"], body
    return dict(body)


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"colour": "red"}, ("colour", "this route takes")),
        ({"limit": "0"}, ("limit", "outside 1..500")),
        ({"limit": "-1"}, ("limit", "outside")),
        ({"limit": "501"}, ("limit", "outside")),
        ({"limit": "ten"}, ("limit", "not a whole number")),
        ({"limit": "9" * 40}, ("limit",)),
        ({"status": "sleeping"}, ("status", "'sleeping' is not one of")),
        ({"status": "routed,"}, ("status", "empty value")),
        ({"priority": "asap"}, ("priority",)),
        ({"sla_state": "late"}, ("sla_state",)),
        ({"desk": "nowhere"}, ("desk",)),
        ({"sort": "colour"}, ("sort",)),
        ({"q": "!!! ???"}, ("q", "no words")),
        ({"q": "x" * 201}, ("q", "longer than")),
        ({"cursor": "garbage"}, ("cursor", "not a cursor this API issued")),
        ({"cursor": "eyJ4Ijox"}, ("cursor",)),
        ({"min_position": "-5"}, ("min_position",)),
        ({"assignee": "ann\x00"}, ("assignee", "NUL")),
        ({"q": "\x00"}, ("q", "NUL")),
        ({"wait_ms": "20000"}, ("wait_ms", "outside 0..10000")),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_a_bad_list_query_is_a_400_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, str], mentions: tuple[str, ...]
) -> None:
    body = refused(await client.get("/v1/tickets", params=params, headers=bearer(BOTH_TOKEN)), 400, *mentions)
    assert body["parameter"] == next(iter(params))


async def test_a_parameter_twice_a_bad_date_a_bad_range_and_a_bad_ticket_id_are_400s(client: httpx.AsyncClient) -> None:
    headers = bearer(BOTH_TOKEN)
    refused(await client.get("/v1/tickets?status=routed&status=closed", headers=headers), 400, "more than once")
    refused(await client.get("/v1/desks/express/metrics?from=2026-13-01", headers=headers), 400, "not a date")
    refused(await client.get("/v1/desks/express/metrics?from=2026-02-01&to=2026-01-01", headers=headers), 400, "after")
    refused(await client.get("/v1/desks/express/metrics?from=2020-01-01&to=2026-01-01", headers=headers), 400, "366")
    refused(await client.get("/v1/tickets/not-a-uuid", headers=headers), 400, "UUID")
    history = "/v1/desks/express/backlog-history"
    refused(await client.get(f"{history}?hours=0", headers=headers), 400, "hours")
    refused(await client.get(f"{history}?hours=100000", headers=headers), 400, "hours")
    refused(await client.get(f"{history}?until=2026-11-23T10:00:00", headers=headers), 400, "time zone")
    refused(await client.get(f"{history}?until=yesterday", headers=headers), 400, "not a date")
    refused(await client.get(f"{history}?until=0001-01-01T00:00:00Z", headers=headers), 400, "years")
    refused(await client.get("/v1/desks/express/first-responses?from=2026-02-01&to=2026-01-01", headers=headers),
            400, "after")  # fmt: skip
    refused(await client.get("/v1/desks/express/sla-board?within=0", headers=headers), 400, "within")
    nul = "/v1/desks/express/organisations/express:%00/tickets"
    refused(await client.get(nul, headers=headers), 400, "NUL")
    refused(await client.get("/v1/desks/express%0A/metrics", headers=headers), 404, "no such route")
    refused(await client.get("/elsewhere", headers=headers), 404, "no such route")


async def test_a_cursor_is_only_good_for_the_filters_and_sort_it_was_issued_for(client: httpx.AsyncClient) -> None:
    headers = bearer(BOTH_TOKEN)
    first = (await client.get("/v1/tickets", params={"limit": 3, "status": "closed"}, headers=headers)).json()
    cursor = first["next_cursor"]
    assert cursor
    ok = await client.get("/v1/tickets", params={"limit": 3, "status": "closed", "cursor": cursor}, headers=headers)
    assert ok.status_code == 200
    for other in ({"status": "resolved"}, {"status": "closed", "sort": "opened_at"}, {}):
        answer = await client.get("/v1/tickets", params={**other, "cursor": cursor}, headers=headers)
        refused(answer, 400, "other filters")
    tampered = cursor[:-4] + ("AAAA" if not cursor.endswith("AAAA") else "BBBB")
    answer = await client.get(
        "/v1/tickets", params={"limit": 3, "status": "closed", "cursor": tampered}, headers=headers
    )
    refused(answer, 400, "cursor")
    agents = await client.get(f"/v1/desks/{EXPRESS}/agents", params={"cursor": cursor}, headers=headers)
    refused(agents, 400, "cursor")


@pytest.mark.parametrize("path", ["/v1/me", "/v1/positions", "/v1/tickets", f"/v1/desks/{BOX}/backlog"])
@pytest.mark.parametrize(
    ("authorization", "mention"),
    [
        (None, "missing bearer token"),
        ("Bearer tfq_not-a-configured-token", "unknown token"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer <token>'"),
        ("Bearer ", "must be 'Bearer <token>'"),
    ],
)
async def test_a_missing_or_wrong_token_is_a_401(
    client: httpx.AsyncClient, path: str, authorization: str | None, mention: str
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = await client.get(path, headers=headers)
    refused(answer, 401, mention)
    assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("route", DESK_ROUTES)
async def test_a_desk_outside_the_tokens_scope_is_a_403_and_an_unknown_desk_a_404(
    client: httpx.AsyncClient, route: str
) -> None:
    refused(await client.get(f"/v1/desks/{EXPRESS}/{route}", headers=bearer(BOX_TOKEN)), 403, EXPRESS)
    refused(await client.get(f"/v1/desks/{BOX}/{route}", headers=bearer(EXPRESS_AGENT_TOKEN)), 403, BOX)
    refused(await client.get(f"/v1/desks/nowhere/{route}", headers=bearer(BOTH_TOKEN)), 404, "nowhere")
    refused(await client.get("/v1/tickets", params={"desk": EXPRESS}, headers=bearer(BOX_TOKEN)), 403, EXPRESS)


async def test_two_desks_two_tokens_every_route_shows_only_the_tokens_desk(
    world: World, client: httpx.AsyncClient
) -> None:
    assert world.tickets[BOX] and world.tickets[EXPRESS]
    for token, mine, theirs in ((BOX_TOKEN, BOX, EXPRESS), (EXPRESS_AGENT_TOKEN, EXPRESS, BOX)):
        headers = bearer(token)
        listed = await every_page(client, "/v1/tickets", headers)
        assert {t["ticket_id"] for t in listed} == set(world.tickets[mine])
        assert {t["desk_id"] for t in listed} == {mine}
        for ticket in world.tickets[mine][:5]:
            assert (await client.get(f"/v1/tickets/{ticket}", headers=headers)).json()["ticket"]["desk_id"] == mine
        for ticket in world.tickets[theirs]:  # every other desk's ticket: as if it did not exist
            refused(await client.get(f"/v1/tickets/{ticket}", headers=headers), 404)
        refused(await client.get(f"/v1/tickets/{uuid.uuid4()}", headers=headers), 404)
        for route in DESK_ROUTES:
            assert (await client.get(f"/v1/desks/{mine}/{route}", headers=headers)).status_code == 200
            refused(await client.get(f"/v1/desks/{theirs}/{route}", headers=headers), 403)
        board = (await client.get(f"/v1/desks/{mine}/sla-board?within=10080", headers=headers)).json()
        shown = {c["ticket_id"] for section in ("at_risk", "breached", "paused") for c in board[section]["clocks"]}
        assert shown <= set(world.tickets[mine])
        organisations = (await client.get(f"/v1/desks/{mine}/organisations", headers=headers)).json()["organisations"]
        for organisation in organisations:
            path = f"/v1/desks/{mine}/organisations/{organisation['organisation_id']}/tickets"
            entries = await every_page(client, path, headers)
            assert {e["ticket_id"] for e in entries} <= set(world.tickets[mine])
            refused(await client.get(path.replace(f"/{mine}/", f"/{theirs}/"), headers=headers), 403)


ROUTES = [
    "/v1/tickets",
    f"/v1/desks/{BOX}/backlog",
    f"/v1/desks/{BOX}/sla-board",
    f"/v1/desks/{BOX}/agents",
    f"/v1/desks/{BOX}/metrics",
    f"/v1/desks/{BOX}/organisations",
    f"/v1/desks/{BOX}/backlog-history",
    f"/v1/desks/{BOX}/first-responses",
    "/v1/tickets/00000000-0001-7000-8000-000000000000",
]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(ROUTES),
    params=st.lists(st.tuples(st.sampled_from(["limit", "status", "cursor", "q", "desk", "sort", "within", "from",
                                               "min_position", "wait_ms", "hours", "until", "x"]),
                              st.text(max_size=30)), max_size=4),
)  # fmt: skip
async def test_fuzzed_query_strings_are_answered_or_refused_never_500(
    client: httpx.AsyncClient, route: str, params: list[tuple[str, str]]
) -> None:
    query: list[tuple[str, str | int | float | bool | None]] = [
        (name, value if name != "wait_ms" else value[:2])
        for name, value in params  # no long waits
    ]
    answer = await client.get(route, params=query, headers=bearer(BOTH_TOKEN))
    assert answer.status_code < 500, (route, params, answer.text)
    assert answer.headers["content-type"] == "application/json"
