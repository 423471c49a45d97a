"""The queries service as a real process (`python -m ticketflow.queries`): it serves its OpenAPI document,
schemathesis finds no 5xx (and answers as documented) on any route with any of the tokens, and it refuses
to start on token grants it cannot use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queries_world import BOTH_TOKEN, BOX_TOKEN, EXPRESS_AGENT_TOKEN, RunningQueries, bearer
from schemathesis.checks import positive_data_acceptance

from ticketflow.queries.domain.tokens import grant_toml

pytestmark = [pytest.mark.pg, pytest.mark.kafka]
REPO = Path(__file__).resolve().parents[2]


async def test_the_service_answers_with_a_token_and_serves_its_openapi_document(service: RunningQueries) -> None:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
        me = (await client.get("/v1/me", headers=bearer(EXPRESS_AGENT_TOKEN))).json()
        assert (me["name"], me["agent_id"], me["reads"], me["acts_on"]) == (
            "express agent", "express-agent-1", ["express"], ["express"]
        )  # fmt: skip
        page = await client.get("/v1/tickets", params={"limit": 5}, headers=bearer(BOX_TOKEN))
        assert page.status_code == 200 and int(page.headers["x-position"]) == page.json()["position"] > 0
        served = await client.get("/v1/openapi.json")
    document = served.json()
    assert document["openapi"] == "3.1.0" and "/v1/tickets/{ticket_id}" in document["paths"]
    assert (REPO / "docs" / "queries-openapi.json").read_bytes() == served.content  # the committed one is current


def operations() -> list[Any]:
    schema = schemathesis.openapi.from_path(REPO / "docs" / "queries-openapi.json")
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]


@pytest.mark.parametrize("operation", operations(), ids=lambda op: op.label)
def test_schemathesis_finds_no_5xx_and_every_answer_is_as_documented(service: RunningQueries, operation: Any) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(), token=st.sampled_from([BOTH_TOKEN, BOX_TOKEN, EXPRESS_AGENT_TOKEN, "nope"]))
    def check(case: Any, token: str) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        if case.query and "wait_ms" in case.query:  # the wait is bounded; the fuzzing need not sit through it
            case.query["wait_ms"] = 0
        response = case.call(base_url=service.base_url, timeout=30)
        assert response.status_code < 500, response.text
        # Valid parameters are not always answerable (a desk outside the token's scope, a cursor for other
        # filters): refusals are documented 4xx, so positive_data_acceptance does not apply.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    check()


@pytest.mark.parametrize(
    ("grants", "mention"),
    [
        (grant_toml("x", "t", ["read:nowhere"], None), "names no configured desk"),
        (grant_toml("x", "t", ["agent:express"], None), "need the agent's identity"),
        (grant_toml("x", "t", ["write:express"], None), "is not read:<desk> or agent:<desk>"),
        ('[[tokens]]\nname = "x"\nsha256 = "plain-text-token"\nscopes = ["read:*"]\n', "sha256"),
        (grant_toml("x", "t", ["read:*"], None) * 2, "the same hash"),
    ],
)
def test_the_service_refuses_to_start_on_token_grants_it_cannot_use(tmp_path: Path, grants: str, mention: str) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(grants)
    env = {**os.environ, "TICKETFLOW_QUERIES_TOKENS_FILE": str(tokens)}
    done = subprocess.run([sys.executable, "-m", "ticketflow.queries"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 2 and mention in done.stderr.decode(), done.stderr.decode()


def test_python_m_makes_a_token_whose_entry_the_service_accepts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ticketflow.queries", "token", "--name", "anna", "--scope", "agent:express",
         "--agent", "anna"], capture_output=True, timeout=60, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    token = next(line.strip() for line in done.stdout.splitlines() if line.strip().startswith("tfq_"))
    entry = done.stdout[done.stdout.index("[[tokens]]") :]
    assert token not in entry and 'agent_id = "anna"' in entry

    from queries_world import DESKS

    from ticketflow.queries.domain.tokens import grants, parse_grants

    principal = grants(parse_grants(entry, None), DESKS.desks).principal(token)
    assert principal is not None and principal.agent_id == "anna" and principal.can_act("express")
    refused = subprocess.run(
        [sys.executable, "-m", "ticketflow.queries", "token", "--name", "x", "--scope", "agent:express"],
        capture_output=True, timeout=60, text=True,
    )  # fmt: skip
    assert refused.returncode == 2 and "agent_id" in refused.stderr
