"""The chat platforms of the `make run` demo, on 127.0.0.1: what notifications delivers arrives here.

eXpress BotX on :8765, Bitrix24 REST on :8766 and SMTP on :8025 are the addresses of
services/notifications' packaged `config/local.toml`. They are the same fakes the tests use
(tests/fakes: BotX checks the bot's signature and token, Bitrix24 the bot's auth token). Everything
they received is served as JSON on http://127.0.0.1:8767/received, which the demo prints.
Nothing here contacts an address outside 127.0.0.0/8."""

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
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.asgi import serve
from fakes.bitrix24 import FakeBitrix24
from fakes.botx import FakeBotX
from fakes.smtp import FakeSmtp

BOTX_PORT, BITRIX24_PORT, SMTP_PORT, RECEIVED_PORT = 8765, 8766, 8025, 8767
# (bot id, the environment variable with its secret): the bots of config/local.toml and deploy/demo.env.
EXPRESS_BOTS = {
    uuid.UUID("8dada2c8-67a6-4434-9dec-570d244e78ee"): "TICKETFLOW_EXPRESS_CLIENT_BOT_SECRET",
    uuid.UUID("3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69"): "TICKETFLOW_EXPRESS_ACME_BOT_SECRET",
}
BITRIX24_BOT_ID, BITRIX24_TOKEN_ENV = 7, "TICKETFLOW_B24_BOX_BOT_TOKEN"


def received(botx: FakeBotX, bitrix24: FakeBitrix24, smtp: FakeSmtp) -> dict[str, list[dict[str, Any]]]:
    return {
        "express": [{"bot_id": str(n.bot_id), "chat_id": str(n.chat_id), "body": n.body} for n in botx.received],
        "bitrix24": [{"dialog_id": m.dialog_id, "message": m.message} for m in bitrix24.received],
        "email": [{"to": m.recipients, "subject": str(m.message["Subject"]), "body": m.body} for m in smtp.received],
    }


async def main() -> None:
    botx = FakeBotX({bot: os.environ[env] for bot, env in EXPRESS_BOTS.items()})
    bitrix24 = FakeBitrix24(auth_token=os.environ[BITRIX24_TOKEN_ENV], bot_id=BITRIX24_BOT_ID)
    smtp = FakeSmtp()

    async def show(_: Request) -> JSONResponse:
        return JSONResponse(received(botx, bitrix24, smtp))

    app = Starlette(routes=[Route("/received", show), Route("/health/ready", lambda _: JSONResponse({"ok": True}))])
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(botx.running(BOTX_PORT))
        await stack.enter_async_context(bitrix24.running(BITRIX24_PORT))
        await stack.enter_async_context(smtp.running(SMTP_PORT))
        await stack.enter_async_context(serve(app, RECEIVED_PORT))
        print(f"[platforms] BotX :{BOTX_PORT}, Bitrix24 :{BITRIX24_PORT}, SMTP :{SMTP_PORT}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
