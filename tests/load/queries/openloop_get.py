"""Open-loop GET load at a constant rate (`tests/support/open_loop.py`: latency from each request's due
time, no coordinated omission) over `--connections` keep-alive HTTP/1.1 connections.

The paths come from a file (one per line, used round-robin); every request carries the same bearer token.
Prints one JSON line (`open_loop.summary`).

Usage: python openloop_get.py --url http://127.0.0.1:PORT --paths FILE --token T --rate 1000 --duration 30
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
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    text = Path(args.paths).read_text()  # noqa: ASYNC240 - before the load starts
    paths = [line.strip() for line in text.splitlines() if line.strip()]
    requests = [
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {args.token}\r\n\r\n".encode()
        for path in paths
    ]
    return await http_open_loop(
        host, port, lambda n: requests[n % len(requests)], args.rate, args.duration, args.connections
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--paths", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    print("OPENLOOP " + json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
