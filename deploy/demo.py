"""The `make run` demo: a short conversation through the running system, as the platforms send it.

1. two agents join queues and go online (roster events through the SRE command line);
2. an eXpress user writes to the client-support bot (a signed BotX proto-4 command), and BotX
   retries the same delivery: one ticket, not two;
3. a Bitrix24 portal installs the app (the ONAPPINSTALL the demo portal issues, verified by intake with
   the demo OAuth server, which also registers the chat bot), an administrator writes from a portal on a
   private address
   (the seed's "not reachable from outside" case: preflight fails it with a remediation), and a
   non-administrator writes too (refused: only portal administrators may talk to support);
then it waits for the tickets to show up in the dashboard API and prints them, the eXpress user asks
for the ticket's `/status`, and it prints what the bot answered in the chats (deploy/demo_platforms.py):
"registered under TF-…" only in the eXpress chat (the one ticket preflight took), the remediation and the
refusal in the two portal chats.
Payload builders are the ones the intake tests use (tests/intake/intake_payloads.py)."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "intake"))
from intake_payloads import b24_message, botx_message
from pybotx.auth import build_botx_jwt_v2

from ticketflow.cli.context import Context
from ticketflow.cli.tickets import agent_event
from ticketflow.contracts.roster_events import AgentJoinedQueue, AgentStatusChanged
from ticketflow.eventstore.connection import dsn_from_env
from ticketflow.messaging.security import PLAINTEXT

INTAKE = "http://127.0.0.1:8001"
DASHBOARD = "http://127.0.0.1:8007"  # the queries service
# The demo's query API token; deploy/demo-tokens.toml holds its hash (read:*). Local demo only.
DASHBOARD_TOKEN = "tfq_demo-dashboard-token-for-the-local-demo-only"
DASHBOARD_AUTH = {"Authorization": f"Bearer {DASHBOARD_TOKEN}"}
PAGES = "http://127.0.0.1:8008"  # the dashboard service: the lead's page and the agents' workspace
# The demo agents' tokens (agent:<desk>, acting as the agent); deploy/demo-tokens.toml holds their hashes.
AGENT_TOKENS = {
    "agent-anna (express)": "tfq_demo-agent-anna-token-for-the-local-demo-only",
    "agent-ivan (bitrix24-box)": "tfq_demo-agent-ivan-token-for-the-local-demo-only",
}
PLATFORMS = "http://127.0.0.1:8767"  # deploy/demo_platforms.py: what notifications delivered
EXPRESS_BOT, EXPRESS_HOST = uuid.UUID("8dada2c8-67a6-4434-9dec-570d244e78ee"), "cts.express.example.ru"
# deploy/demo_platforms.py's portal: the packaged desk's example member_id and its install's application token.
PORTAL_MEMBER, PORTAL_TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90", "demo-application-token-0001"
PORTAL_DOMAIN = "192.168.10.5"  # a box portal on a private address: the seed's "not reachable" case
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


async def agents(dsn: str) -> None:
    # Ids of the staff directory (services/notifications config/local.toml): names and addresses come from it.
    for agent, queue in (("agent-anna", "client-l1"), ("agent-ivan", "box-l1")):
        cli = Context("", dsn, PLAINTEXT)
        await agent_event(cli, AgentJoinedQueue(agent, queue, (), ("ru", "en"), 5))
        await agent_event(cli, AgentStatusChanged(agent, "online"))


def express_command(
    text: str, chat_id: uuid.UUID, user_huid: uuid.UUID | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A BotX proto-4 command from the eXpress user `user_huid` (default: a new one) in `chat_id`, and
    its signed headers."""
    secret = os.environ["TICKETFLOW_EXPRESS_CLIENT_BOT_SECRET"]
    token = build_botx_jwt_v2(bot_id=EXPRESS_BOT, bot_host=EXPRESS_HOST, secret_key=secret)
    command = botx_message(text, chat_id=chat_id, bot_id=EXPRESS_BOT, user_huid=user_huid)
    command["from"]["host"] = EXPRESS_HOST
    return command, {"Authorization": f"Bearer {token}"}


async def conversation(client: httpx.AsyncClient) -> uuid.UUID:
    """Post the conversation; returns the eXpress chat's id."""
    chat = uuid.uuid4()
    command, headers = express_command("После обновления приложения не приходят push-уведомления на Android", chat)
    for attempt in ("first delivery", "BotX retries the same sync_id"):
        answer = await client.post(f"{INTAKE}/command", json=command, headers=headers)
        say(f"eXpress /command ({attempt}): {answer.status_code} {answer.text}")

    install = (await client.post(f"{PLATFORMS}/bitrix24/install-event")).text  # as the portal sends it
    answer = await client.post(f"{INTAKE}/bitrix24/events", content=install, headers=FORM)
    say(f"Bitrix24 ONAPPINSTALL: {answer.status_code} {answer.text}")
    bot_id = str(answer.json().get("bot_id", "")) if answer.status_code == 200 else ""
    admin_user, other_user = (str(random.randint(100, 10**6)) for _ in range(2))  # new conversations each run
    for user, text, admin in (
        (admin_user, "После обновления портал отдаёт 500 на /crm/", True),
        (other_user, "Как настроить бизнес-процесс?", False),
    ):
        form = b24_message(
            text,
            dialog_id=user,
            message_id=str(uuid.uuid4().int % 10**6),
            user_id=user,
            member_id=PORTAL_MEMBER,
            token=PORTAL_TOKEN,
            bot_id=bot_id,  # the bot intake registered at install
        )
        form = form.replace("some-domain.bitrix24.com", PORTAL_DOMAIN)
        # The portal states the flag here: the demo portal is on a private address, which intake will
        # not call to ask (REST user.admin): without the flag the answer would be "could not verify".
        form += f"&data%5BUSER%5D%5BIS_ADMIN%5D={'Y' if admin else 'N'}"
        answer = await client.post(f"{INTAKE}/bitrix24/events", content=form, headers=FORM)
        say(f"Bitrix24 message from {'an administrator' if admin else 'a non-administrator'}: {answer.status_code}")
    return chat


async def ask_status(client: httpx.AsyncClient, chat: uuid.UUID) -> None:
    """The eXpress user asks for the ticket's status: intake answers in the chat (through notifications)."""
    command, headers = express_command("/status", chat)
    answer = await client.post(f"{INTAKE}/command", json=command, headers=headers)
    say(f"eXpress /status: {answer.status_code} {answer.text}")


async def ticket_ids(client: httpx.AsyncClient) -> set[str]:
    tickets = (await client.get(f"{DASHBOARD}/v1/tickets", params={"limit": "500"}, headers=DASHBOARD_AUTH)).json()
    tickets = tickets["tickets"]
    return {str(t["ticket_id"]) for t in tickets}


async def show(client: httpx.AsyncClient, before: set[str], expected: int) -> int:
    """Wait until this run's tickets are past preflight in the dashboard, then print them."""
    deadline = time.monotonic() + 60
    new: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        answer = await client.get(f"{DASHBOARD}/v1/tickets", params={"limit": "500"}, headers=DASHBOARD_AUTH)
        tickets = answer.json()["tickets"]
        new = [t for t in tickets if t["ticket_id"] not in before]
        if len(new) >= expected and all(t["status"] != "opened" for t in new):
            break
        await asyncio.sleep(1)
    say(f"this run's tickets in the query API {DASHBOARD}/v1/tickets:")
    for t in new:
        print(
            f"    {t['ticket_id']}  {t['desk_id']:13} {t['status']:18} queue={t['queue_id']} "
            f"assignee={t['assignee']} category={t['category']}"
        )
    if len(new) != expected:
        say(f"expected {expected} new tickets, found {len(new)}: see .local/run/*.log")
        return 1
    return 0


async def delivered(client: httpx.AsyncClient, seconds: float = 15) -> dict[str, list[dict[str, object]]]:
    """What the demo platforms received so far, once deliveries stop arriving (or after `seconds`)."""
    seen: dict[str, list[dict[str, object]]] = {}
    deadline, quiet = time.monotonic() + seconds, 0
    while time.monotonic() < deadline and quiet < 3:
        try:
            now = (await client.get(f"{PLATFORMS}/received")).json()
        except httpx.HTTPError as error:
            say(f"the demo platforms do not answer ({error!r}): see .local/run/platforms.log")
            return {}
        quiet = quiet + 1 if now == seen and any(now.values()) else 0
        seen = now
        await asyncio.sleep(1)
    return seen


async def main() -> int:
    dsn = dsn_from_env()
    await agents(dsn)
    async with httpx.AsyncClient(timeout=10) as client:
        before = await ticket_ids(client)
        chat = await conversation(client)
        code = await show(client, before, expected=3)
        await ask_status(client, chat)
        say(f"what the chat platforms received from notifications ({PLATFORMS}/received):")
        for platform, messages in (await delivered(client)).items():
            for m in messages:
                text = str(m.get("body") or m.get("message") or m.get("subject"))
                print(f"    {platform:9} {text[:110]!r}")
    say(f"the dashboard: {PAGES} (sign in with a token; the demo conversation is on the lead's page)")
    print(f"    {'support lead (read:*)':27} {DASHBOARD_TOKEN}")
    for who, token in AGENT_TOKENS.items():
        print(f"    {who:27} {token}")
    say(
        f"more: make status | curl -H 'Authorization: Bearer {DASHBOARD_TOKEN}' {DASHBOARD}/v1/desks/express/metrics"
        " | .venv/bin/ticketflow --help | make stop"
    )
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
