"""Bad input against the running service: a 4xx with a JSON body naming the problem, counted in
`ticketflow_intake_rejected_total`, and nothing written (no rows, no chat.inbound record). Fuzzing finds no 5xx."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from intake_payloads import (
    GENERIC_KEY,
    GENERIC_TENANT,
    OTHER_BOT_ID,
    b24_message,
    botx_headers,
    botx_message,
    botx_token,
    generic_message,
)
from intake_service import RunningIntake, seed_install
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.result import Ok

from ticketflow.intake.platforms.generic import openapi_document

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
FORGED = "forged-secret-of-sufficient-length-0123456789abcdef-0123456789abcdef-012"


def botx(mutate: Callable[[dict[str, Any]], Any] = lambda p: None) -> bytes:
    payload = botx_message("x", chat_id=uuid.uuid4())
    mutate(payload)
    return json.dumps(payload).encode()


def generic(**changes: Any) -> bytes:
    return json.dumps({**generic_message("x", conversation_id="c", message_id=str(uuid.uuid4())), **changes}).encode()


KEY = {"Authorization": f"Bearer {GENERIC_KEY}", **JSON}
# A valid BotX token expires: the cases name it, and each request gets a fresh one (`_sent_headers`).
FRESH_BOTX = "Bearer <a fresh BotX token>"
BOTX = {"Authorization": FRESH_BOTX, **JSON}
CASES: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    ("command", "/command", b"{not json", BOTX, 400, "malformed_json"),
    ("command", "/command", b"[1, 2]", BOTX, 422, "invalid_payload"),
    ("command", "/command", botx(), {**BOTX, "Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("command", "/command", b'{"pad": "' + b"x" * 300_000 + b'"}', BOTX, 413, "body_too_large"),
    ("command", "/command", botx(), JSON, 401, "unverified_request"),
    ("command", "/command", botx(), botx_headers(botx_token(secret=FORGED)), 401, "unverified_request"),
    ("command", "/command", botx(lambda p: p.update(bot_id=str(OTHER_BOT_ID))), BOTX, 403, "unknown_bot"),
    (
        "command",
        "/command",
        botx(lambda p: p.update(proto_version=5)),
        BOTX,
        400,
        "unsupported_proto_version",
    ),
    (
        "command",
        "/command",
        botx(lambda p: p["command"].update(command_type="system", body="system:no_such_event")),
        BOTX,
        400,
        "unknown_system_event",
    ),
    ("command", "/command", botx(lambda p: p["from"].update(group_chat_id=42)), BOTX, 422, "invalid_payload"),
    (
        "callback",
        "/notification/callback",
        b'{"sync_id": 1}',
        botx_headers(botx_token(secret=FORGED)),
        401,
        "unverified_request",
    ),
    ("callback", "/notification/callback", b'{"sync_id": 1}', BOTX, 422, "invalid_payload"),
    (
        "bitrix24",
        "/bitrix24/events",
        b24_message("x", dialog_id="1", message_id="1", token="f" * 32).encode(),
        FORM,
        403,
        "wrong_application_token",
    ),
    (
        "bitrix24",
        "/bitrix24/events",
        b24_message("x", dialog_id="1", message_id="1", member_id="evil").encode(),
        FORM,
        403,
        "unknown_portal",
    ),
    (
        "bitrix24",
        "/bitrix24/events",
        b24_message("x", dialog_id="1", message_id="1", member_id="not-installed-portal").encode(),
        FORM,
        403,
        "portal_not_installed",
    ),
    (
        "bitrix24",
        "/bitrix24/events",
        b24_message("x", dialog_id="1", message_id="1", bot_id="1").encode(),
        FORM,
        403,
        "unknown_bot",
    ),
    (
        "bitrix24",
        "/bitrix24/events",
        b24_message("x", dialog_id="1", message_id="1").encode(),
        JSON,
        415,
        "unsupported_media_type",
    ),
    (
        "bitrix24",
        "/bitrix24/events",
        b24_message("x", dialog_id="1", message_id="1", event="ONTASKADD").encode(),
        FORM,
        400,
        "unknown_event",
    ),
    ("bitrix24", "/bitrix24/events", b"event=ONIMBOTMESSAGEADD&ts=abc", FORM, 422, "invalid_payload"),
    ("generic", "/v1/messages", b"{", KEY, 400, "malformed_json"),
    ("generic", "/v1/messages", generic(text=["not", "a", "string"]), KEY, 422, "invalid_payload"),
    ("generic", "/v1/messages", generic(surprise=1), KEY, 422, "invalid_payload"),
    ("generic", "/v1/messages", generic(tenant_id="nobody"), KEY, 403, "unknown_tenant"),
    ("generic", "/v1/messages", generic(), JSON, 401, "unauthorized"),
    ("generic", "/v1/messages", generic(), {**KEY, "Content-Type": "application/xml"}, 415, "unsupported_media_type"),
]
_COUNTS = """SELECT (SELECT count(*) FROM intake_messages), (SELECT count(*) FROM intake_conversations),
                    (SELECT count(*) FROM events), (SELECT count(*) FROM intake_replies),
                    (SELECT count(*) FROM bitrix24_installs)"""


def _sent_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: f"Bearer {botx_token()}" if value == FRESH_BOTX else value for name, value in headers.items()}


async def topic_end(intake: RunningIntake) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=intake.bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(intake.topic, p) for p in range(3)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def test_each_bad_request_is_named_counted_and_writes_nothing(intake: RunningIntake) -> None:
    async with intake.client() as client:
        await seed_install(intake.pool)
        before_rows = tuple(await intake.pool.fetchrow(_COUNTS))
        before_end = await topic_end(intake)
        for route, path, body, headers, status, reason in CASES:
            counted = await intake.metric("ticketflow_intake_rejected_total", reason=reason, route=_route_name(route))
            answer = await client.post(path, content=body, headers=_sent_headers(headers))
            assert answer.status_code == status, (path, reason, answer.text)
            problem = answer.json()
            assert reason in json.dumps(problem), (reason, problem)
            assert (
                await intake.metric("ticketflow_intake_rejected_total", reason=reason, route=_route_name(route))
                == counted + 1
            )
        status_answer = await client.get("/status", params={"bot_id": "x"}, headers=botx_headers())
        assert status_answer.status_code == 422 and status_answer.json()["error"] == "invalid_query"
    await asyncio.sleep(1.0)  # anything accepted by mistake would be recorded by now
    assert tuple(await intake.pool.fetchrow(_COUNTS)) == before_rows
    assert await topic_end(intake) == before_end


def _route_name(route: str) -> str:
    return {
        "command": "botx_command",
        "callback": "botx_callback",
        "bitrix24": "bitrix24_event",
        "generic": "generic_message",
    }[route]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
paths_in_botx = st.sampled_from(
    [
        ("proto_version",),
        ("sync_id",),
        ("bot_id",),
        ("command",),
        ("command", "body"),
        ("command", "command_type"),
        ("command", "data"),
        ("from",),
        ("from", "user_huid"),
        ("from", "group_chat_id"),
        ("from", "chat_type"),
        ("from", "is_admin"),
        ("from", "locale"),
        ("from", "device_meta"),
        ("attachments",),
        ("entities",),
        ("source_sync_id",),
    ]
)


def _set(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target: Any = payload
    for key in path[:-1]:
        target = target.get(key) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return
    target[path[-1]] = value


async def stored_whole_or_not_at_all(intake: RunningIntake, sent: list[tuple[str, int]]) -> None:
    """Each message refused (4xx) left nothing: no `intake_messages` row, no event naming it. Each accepted
    one was recorded whole: one row, and one event naming it exactly when the row names a ticket. `sent`:
    (message id, status); intake records asynchronously, so the accepted ones are waited for."""
    accepted = [m for m, status in sent if status < 300]

    async def rows() -> dict[str, tuple[int, int, bool]]:
        found = await intake.pool.fetch(
            """SELECT m.id, (SELECT count(*) FROM intake_messages WHERE idempotency_key LIKE '%:' || m.id) AS rows,
                      (SELECT count(*) FROM events WHERE data->>'platform_message_id' = m.id) AS events,
                      EXISTS (SELECT FROM intake_messages WHERE idempotency_key LIKE '%:' || m.id
                              AND ticket_id IS NOT NULL) AS ticketed
               FROM unnest($1::text[]) AS m(id)""",
            [m for m, _ in sent],
        )
        return {r["id"]: (r["rows"], r["events"], r["ticketed"]) for r in found}

    await intake.eventually(rows, lambda found: all(found[m][0] for m in accepted), wait_s=60)
    await asyncio.sleep(1.0)  # anything refused but taken by mistake would be recorded by now
    found = await rows()
    for message_id, status in sent:
        count, events, ticketed = found[message_id]
        if status >= 300:
            assert (count, events) == (0, 0), (message_id, status, found[message_id])
        else:
            assert count == 1 and events == int(ticketed), (message_id, status, found[message_id])


async def test_fuzzed_botx_payloads_with_a_valid_token_never_5xx_and_are_stored_whole_or_not_at_all(
    intake: RunningIntake,
) -> None:
    sent: list[tuple[str, int]] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(path=paths_in_botx, value=json_values)
    def post(path: tuple[str, ...], value: Any) -> None:
        payload = botx_message("fuzz", chat_id=uuid.uuid4())
        _set(payload, path, value)
        answer = httpx.post(f"{intake.base_url}/command", json=payload, headers=botx_headers(), timeout=10)
        assert answer.status_code < 500, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        if path != ("sync_id",):  # the message's id, unless the fuzzer replaced it
            sent.append((payload["sync_id"], answer.status_code))

    await asyncio.to_thread(post)
    assert {status for _, status in sent} >= {202}, "no example was accepted: the check below would be vacuous"
    await stored_whole_or_not_at_all(intake, sent)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/command", "/v1/messages", "/bitrix24/events", "/notification/callback"]),
    body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
    content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", ""]),
    authorization=st.sampled_from(["", "Bearer", f"Bearer {GENERIC_KEY}", "Bearer a.b.c", "Basic x"]),
)
def test_fuzzed_requests_never_5xx(
    intake: RunningIntake, path: str, body: bytes, content_type: str, authorization: str
) -> None:
    headers = {"Content-Type": content_type, "Authorization": authorization}
    answer = httpx.post(f"{intake.base_url}{path}", content=body, headers=headers, timeout=10)
    assert answer.status_code < 500, (path, body, answer.text)


async def test_fuzzed_bitrix24_forms_never_5xx_and_are_stored_whole_or_not_at_all(intake: RunningIntake) -> None:
    await seed_install(intake.pool)
    sent: list[tuple[str, int]] = []

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(fields=st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=8))
    def post(fields: dict[str, str]) -> None:
        message_id = f"fuzz-{uuid.uuid4().hex}"
        base = dict(httpx.QueryParams(b24_message("x", dialog_id=f"chat{uuid.uuid4().hex[:8]}", message_id=message_id)))
        answer = httpx.post(f"{intake.base_url}/bitrix24/events", data={**base, **fields}, headers=FORM, timeout=10)
        assert answer.status_code < 500, (fields, answer.text)
        if "data[PARAMS][MESSAGE_ID]" not in fields:
            sent.append((message_id, answer.status_code))

    await asyncio.to_thread(post)
    assert {status for _, status in sent} >= {200}, "no example was accepted: the check below would be vacuous"
    await stored_whole_or_not_at_all(intake, sent)


GENERIC_API = schemathesis.openapi.from_dict(openapi_document())["/v1/messages"]["POST"]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=GENERIC_API.as_strategy(), authorised=st.booleans())
def test_schemathesis_on_the_generic_api_finds_no_5xx_and_answers_as_documented(
    intake: RunningIntake, case: Any, authorised: bool
) -> None:
    if authorised and isinstance(case.body, dict):  # half the cases get past authentication
        case.body["tenant_id"] = GENERIC_TENANT
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {GENERIC_KEY}"}
    response = case.call(base_url=intake.base_url, timeout=10)
    # No 5xx; status codes, content types and bodies as documented. Not "every schema-valid body is
    # accepted": in OpenAPI 3.1 `format: date-time` is an annotation, so any string is schema-valid for
    # `sent_at`, while the service (rightly) refuses a timestamp that is not RFC 3339.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])


INTAKE_DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "intake.json"  # `make openapi`


async def test_schemathesis_on_every_operation_of_intakes_document_finds_no_5xx_and_stores_nothing(
    intake: RunningIntake,
) -> None:
    """Every operation of intake's OpenAPI document (BotX, Bitrix24, the generic API, health, metrics),
    with generated requests and no credentials: never a 5xx, JSON answers (but `/metrics`), nothing
    recorded or queued."""
    document = json.loads(INTAKE_DOCUMENT.read_text())
    operations = []
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert {op.path for op in operations} >= {"/command", "/status", "/notification/callback", "/bitrix24/events",
                                              "/v1/messages"}  # fmt: skip
    before = (tuple(await intake.pool.fetchrow(_COUNTS)), await topic_end(intake))
    for operation in operations:
        await asyncio.to_thread(_generated_requests(intake, operation))
    await asyncio.sleep(1.0)  # anything taken by mistake would be recorded by now
    assert (tuple(await intake.pool.fetchrow(_COUNTS)), await topic_end(intake)) == before


def _generated_requests(intake: RunningIntake, operation: Any) -> Callable[[], None]:
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def call(case: Any) -> None:
        response = case.call(base_url=intake.base_url, timeout=10)
        assert response.status_code < 500, (operation.label, response.status_code, response.text[:300])
        content_type = response.headers.get("content-type") or [""]
        if operation.path != "/metrics":  # Prometheus' text format
            assert content_type[0].startswith("application/json"), (operation.label, content_type)

    return call
