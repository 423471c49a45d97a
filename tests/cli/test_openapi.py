"""docs/openapi/*.json: what the services' declarations render now (`make openapi` after a change), valid
OpenAPI 3.1, and covering every route each service serves (a route added without its document fails)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from openapi_spec_validator import validate

from ticketflow.cli.openapi import documents, render
from ticketflow.intake.http import Webhooks
from ticketflow.intake.http import routes as intake_routes
from ticketflow.runtime.openapi import documented, served
from ticketflow.runtime.operations import operations_app
from ticketflow.runtime.service import Service, asgi_app
from ticketflow.runtime.settings import ServiceSettings, load_settings
from ticketflow.sla.http import routes as sla_routes

FOLDER = Path(__file__).resolve().parents[2] / "docs" / "openapi"
DOCUMENTS = documents()


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_the_committed_document_is_what_the_code_renders_now(name: str) -> None:
    assert (FOLDER / f"{name}.json").read_bytes() == render(DOCUMENTS[name]), "stale: run `make openapi`"


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_each_document_is_valid_openapi_3_1(name: str) -> None:
    validate(json.loads((FOLDER / f"{name}.json").read_bytes()))


def test_every_route_a_service_serves_is_documented_and_nothing_else() -> None:
    async def start(_: Any) -> None:
        return None

    health = served(asgi_app(Service("x", load_settings(ServiceSettings), start)).routes)
    webhooks = Webhooks(cast(Any, SimpleNamespace(metrics=None)), cast(Any, None), cast(Any, None), None)
    serving = {
        "intake": served(intake_routes(webhooks)),
        "projector": set(),  # the query API is the queries service (docs/queries-openapi.json)
        "sla": served(sla_routes(cast(Any, None))),
        "preflight": set(),
        "routing": set(),
        "notifications": set(),
    }
    operations_port = served(operations_app(cast(Any, None), cast(Any, None), metrics=True).routes)
    assert documented(DOCUMENTS["operations"]) == operations_port
    for name, own in serving.items():
        assert documented(DOCUMENTS[name]) == own | health, name
