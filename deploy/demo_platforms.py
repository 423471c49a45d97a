"""The chat platforms of the `make run` demo, on 127.0.0.1: what notifications delivers arrives here.

eXpress BotX on :8765 and SMTP on :8025 are the addresses of services/notifications' packaged
`config/local.toml`. The Bitrix24 portal (REST on https://127.0.0.1:8766) and Bitrix24's OAuth server
(https://127.0.0.1:8768) are the demo's `TICKETFLOW_B24_*` settings (deploy/demo.env): the portal is
installed the way a real one is (the demo posts the ONAPPINSTALL this process issues, POST
/bitrix24/install-event, to intake, which verifies it with the OAuth server and registers the bot), and
notifications reaches it through that install. Before anything serves, this process writes what the
services need to trust and find it: the CA of its certificates (`TICKETFLOW_B24_CA_FILE`) and a copy of
the packaged desk files whose Bitrix24 desk names this portal (`TICKETFLOW_DESK_CONFIG_DIR`).
They are the same fakes the tests use (tests/fakes). Everything they received is served as JSON on
http://127.0.0.1:8767/received, which the demo prints. Nothing here contacts an address outside 127.0.0.0/8."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.asgi import serve
from fakes.bitrix24 import FakeBitrix24
from fakes.botx import FakeBotX
from fakes.smtp import FakeSmtp
from support.bitrix24 import desks_naming

BOTX_PORT, BITRIX24_PORT, SMTP_PORT, RECEIVED_PORT, OAUTH_PORT = 8765, 8766, 8025, 8767, 8768
# (bot id, the environment variable with its secret): the bots of config/local.toml and deploy/demo.env.
EXPRESS_BOTS = {
    uuid.UUID("8dada2c8-67a6-4434-9dec-570d244e78ee"): "TICKETFLOW_EXPRESS_CLIENT_BOT_SECRET",
    uuid.UUID("3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69"): "TICKETFLOW_EXPRESS_ACME_BOT_SECRET",
}
# The packaged bitrix24-box desk's application and example portal; its secret is deploy/demo.env's.
BITRIX24_CLIENT_ID, BITRIX24_MEMBER = "local.ticketflow-box-support", "a1b2c3d4e5f60718293a4b5c6d7e8f90"
BITRIX24_SECRET_ENV, APPLICATION_TOKEN = "TICKETFLOW_B24_BOX_CLIENT_SECRET", "demo-application-token-0001"


def received(botx: FakeBotX, bitrix24: FakeBitrix24, smtp: FakeSmtp) -> dict[str, list[dict[str, Any]]]:
    return {
        "express": [{"bot_id": str(n.bot_id), "chat_id": str(n.chat_id), "body": n.body} for n in botx.received],
        "bitrix24": [{"dialog_id": m.dialog_id, "message": m.message} for m in bitrix24.received],
        "email": [{"to": m.recipients, "subject": str(m.message["Subject"]), "body": m.body} for m in smtp.received],
    }


async def main() -> None:
    botx = FakeBotX({bot: os.environ[env] for bot, env in EXPRESS_BOTS.items()})
    bitrix24 = FakeBitrix24(member_id=BITRIX24_MEMBER, client_id=BITRIX24_CLIENT_ID,
                            client_secret=os.environ[BITRIX24_SECRET_ENV])  # fmt: skip
    smtp = FakeSmtp()
    ca_file = Path(os.environ["TICKETFLOW_B24_CA_FILE"])
    ca_file.parent.mkdir(parents=True, exist_ok=True)
    bitrix24.ca.cert_pem.write_to_path(str(ca_file))
    desks_naming(f"127.0.0.1:{BITRIX24_PORT}", Path(os.environ["TICKETFLOW_DESK_CONFIG_DIR"]))

    async def show(_: Request) -> JSONResponse:
        return JSONResponse(received(botx, bitrix24, smtp))

    async def install_event(_: Request) -> PlainTextResponse:
        """The ONAPPINSTALL the portal sends when the application is installed: fresh tokens each time."""
        return PlainTextResponse(bitrix24.install_form(APPLICATION_TOKEN))

    app = Starlette(
        routes=[
            Route("/received", show),
            Route("/bitrix24/install-event", install_event, methods=["POST"]),
            Route("/health/ready", lambda _: JSONResponse({"ok": True})),
        ]
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(botx.running(BOTX_PORT))
        await stack.enter_async_context(bitrix24.running(BITRIX24_PORT, OAUTH_PORT))
        await stack.enter_async_context(smtp.running(SMTP_PORT))
        await stack.enter_async_context(serve(app, RECEIVED_PORT))
        print(f"[platforms] BotX :{BOTX_PORT}, Bitrix24 :{BITRIX24_PORT} (OAuth :{OAUTH_PORT}), SMTP :{SMTP_PORT}",
              flush=True)  # fmt: skip
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
