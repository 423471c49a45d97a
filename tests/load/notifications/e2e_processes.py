"""The bench's helper processes: a Bitrix24 portal (HTTPS) and the ceiling consumer (see bench_e2e.py).

python e2e_processes.py portal --port P --cert PEM          (the certificate and its key, one file)
python e2e_processes.py ceiling --topic T --url U --ca PEM [--parallel N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import ssl
import time
import uuid
from typing import Any, ClassVar

import msgspec
from aiokafka import AIOKafkaConsumer

from ticketflow.bitrix24 import GuardedHttp
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import envelope_decoder
from ticketflow.runtime.netguard import AddressPolicy, parse_networks

KAFKA = os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
TOKEN, BOT_ID = "bench-token", 7
SEQ = re.compile(rb"bench-(\d+)")
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}


# -- the platform server (its own process) ------------------------------------------------------


class Portal(asyncio.Protocol):
    received: ClassVar[dict[int, float]] = {}  # seq -> first arrival (monotonic, comparable across processes)
    counters: ClassVar[dict[str, int]] = {"requests": 0, "duplicates": 0, "refused": 0}
    down_until = 0.0

    def connection_made(self, transport: Any) -> None:
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = next(
                (int(v) for n, _, v in (h.partition(":") for h in head[1:]) if n.lower() == "content-length"), 0
            )
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
            method, path = head[0].split(" ")[:2]
            status, answer = self.answer(method, path, body)
            payload = msgspec.json.encode(answer)
            self.transport.write(
                f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        cls, now = type(self), time.monotonic()
        if path == "/rest/imbot.message.add.json":
            cls.counters["requests"] += 1
            if now < cls.down_until:
                return 503, {"error": "INTERNAL_SERVER_ERROR", "error_description": "portal is down"}
            params = msgspec.json.decode(body)
            if params.get("auth") != TOKEN or int(params.get("BOT_ID", 0)) != BOT_ID or not params.get("DIALOG_ID"):
                cls.counters["refused"] += 1
                return 401, {"error": "invalid_token", "error_description": "The access token provided is invalid."}
            match = SEQ.search(str(params.get("MESSAGE", "")).encode())
            if match:
                seq = int(match.group(1))
                if seq in cls.received:
                    cls.counters["duplicates"] += 1
                else:
                    cls.received[seq] = now
            return 200, {"result": cls.counters["requests"], "time": {"start": time.time()}}
        if path == "/control/down":
            cls.down_until = now + float(msgspec.json.decode(body)["seconds"])
            return 200, {"down_until": cls.down_until}
        if path == "/stats":
            return 200, {**cls.counters, "received": len(cls.received)}
        if path == "/stats/full":
            return 200, {"received": {str(k): v for k, v in cls.received.items()}}
        return 404, {"error": "NOT_FOUND"}


async def serve_portal(port: int, cert: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert)
    server = await asyncio.get_running_loop().create_server(Portal, "127.0.0.1", port, ssl=context)
    async with server:
        await server.serve_forever()


# -- the ceiling: consume and POST, nothing else (its own process) ------------------------------


async def ceiling_consumer(topic: str, url: str, ca: str, parallel: int) -> None:
    """The Bitrix24 channel's own HTTP client (`ticketflow.bitrix24.GuardedHttp`, aiohttp, same connection
    limits, TLS) and JSON encoder, without the engine: the fair "same client, no engine" ceiling."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, group_id=f"ceiling-{topic}",
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    gate = asyncio.Semaphore(parallel)
    port = int(url.split(":")[2].split("/")[0])
    http = GuardedHttp(policy=AddressPolicy(parse_networks("127.0.0.0/8")), allowed_ports=frozenset({port}),
                       ca_file=ca, timeout_s=10)  # fmt: skip

    # A ticket's TicketOpened waits here for its PreflightPassed, which sends the message (as the service).
    opened: dict[uuid.UUID, t.TicketOpened] = {}

    def message_of(value: bytes) -> dict[str, Any] | None:
        event = envelope_decoder.decode(value).event
        if isinstance(event, t.TicketOpened):
            opened[event.ticket_id] = event
            return None
        assert isinstance(event, t.PreflightPassed), event
        ticket = opened.pop(event.ticket_id)
        return {"BOT_ID": BOT_ID, "DIALOG_ID": ticket.chat.conversation_id, "MESSAGE": ticket.text, "auth": TOKEN}

    async def post(message: dict[str, Any]) -> None:
        async with gate:
            answer = await http.request("POST", url, body=msgspec.json.encode(message))
            assert answer.status == 200, answer

    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            messages = [message_of(r.value) for records in batches.values() for r in records]  # in order
            await asyncio.gather(*(post(m) for m in messages if m is not None))
            if batches:
                await consumer.commit()
    finally:
        await http.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["portal", "ceiling"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--topic")
    parser.add_argument("--url")
    parser.add_argument("--cert", help="the portal's certificate and key (PEM)")
    parser.add_argument("--ca", help="the CA the ceiling trusts (PEM)")
    parser.add_argument("--parallel", type=int, default=64)
    cli = parser.parse_args()
    if cli.role == "portal":
        asyncio.run(serve_portal(cli.port, cli.cert))
    else:
        asyncio.run(ceiling_consumer(cli.topic, cli.url, cli.ca, cli.parallel))
