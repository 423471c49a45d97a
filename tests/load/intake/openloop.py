"""Open-loop BotX webhook load at a constant rate (`tests/support/open_loop.py`: latency from each request's
due time, no coordinated omission), over `--connections` keep-alive HTTP/1.1 connections. The body is the
BotX template of bench_intake.py with a fresh `sync_id` per request. Prints one JSON line (`open_loop.summary`).

Usage (bench_intake.py runs it): python openloop.py --url http://127.0.0.1:PORT/command --rate 3000
    --duration 15 --connections 64 --template FILE (JSON with p0/p1/p2/token/nonce/conversations)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: support.open_loop
from support.open_loop import http_open_loop


async def run(args: argparse.Namespace) -> dict[str, Any]:
    template = json.loads(Path(args.template).read_text())  # noqa: ASYNC240 - before the load starts
    url = urlsplit(args.url)
    host, port, path = url.hostname or "127.0.0.1", url.port or 80, url.path
    p0, p1, p2 = (template[k].encode() for k in ("p0", "p1", "p2"))
    nonce, conversations = template["nonce"], int(template["conversations"])
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {template['token']}\r\nContent-Length: "
    ).encode()

    def request(n: int) -> bytes:
        sync = f"{nonce}-{n >> 48 & 0xFFFF:04x}-4000-8000-{n & 0xFFFFFFFFFFFF:012x}".encode()
        chat = f"{nonce}-0000-4000-8000-{(n * 7) % conversations:012x}".encode()
        body = p0 + sync + p1 + chat + p2
        message: bytes = head + str(len(body)).encode() + b"\r\n\r\n" + body
        return message

    return await http_open_loop(host, port, request, args.rate, args.duration, args.connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=3000)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--template", required=True)
    args = parser.parse_args()
    print("OPENLOOP " + json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
