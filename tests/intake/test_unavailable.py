"""When the message cannot be made durable (Kafka or PostgreSQL down), the webhook answers 503 in JSON:
the platform retries, and nothing was accepted."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka.errors import KafkaTimeoutError
from intake_app import make_intake
from intake_payloads import TENANT_SECRETS, TENANTS_TOML, botx_headers, botx_message
from starlette.applications import Starlette

from ticketflow.contracts.chat import ChatMessage
from ticketflow.intake.adapters.portals import Portals
from ticketflow.intake.http import Webhooks, routes
from ticketflow.intake.platforms.botx import BotxGateway
from ticketflow.intake.tenants import load_tenants


class FailingInbound:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def publish(self, message: ChatMessage) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (KafkaTimeoutError(), 503, "unavailable"),
        (ConnectionRefusedError(), 503, "unavailable"),
        (RuntimeError("a bug"), 500, "internal_error"),
    ],
)
async def test_an_outage_is_a_503_and_a_bug_a_json_500(
    tmp_path: Path, error: Exception, status: int, code: str
) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(TENANTS_TOML)
    os.environ.update(TENANT_SECRETS)
    tenants = load_tenants(path)
    intake, _ = make_intake(tenants=tenants, inbound=FailingInbound(error))
    webhooks = Webhooks(intake, BotxGateway(tenants), Portals(rest=None))  # type: ignore[arg-type]
    app = Starlette(routes=routes(webhooks))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
        answer = await client.post("/command", json=botx_message("x", chat_id=uuid.uuid4()), headers=botx_headers())
    assert (answer.status_code, answer.json()["error"]) == (status, code)
    assert intake.metrics.value("ticketflow_intake_rejected", route="botx_command", reason=code) == 1
    assert intake.metrics.total("ticketflow_intake_accepted") == 0
