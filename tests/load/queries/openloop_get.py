"""Open-loop GET load at a constant rate (the wrk2 idea, as tests/load/intake/openloop.py does for POSTs):
request i is due at start + i/rate whether or not earlier answers came back, and its latency counts from
when it was due, so a stalled server shows up as latency (no coordinated omission).

The paths come from a file (one per line, used round-robin); every request carries the same bearer token.
Prints one JSON line: offered and achieved rate, p50/p90/p99/p99.9/max in ms, answers by status, and this
generator's own CPU seconds.

Usage: python openloop_get.py --url http://127.0.0.1:PORT --paths FILE --token T --rate 1000 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import resource
import time
from typing import Any
from urllib.parse import urlsplit

import uvloop


class Connection(asyncio.Protocol):
    def __init__(self, done: Any) -> None:
        self.done = done
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.done(self, -1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            length = 0
            for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < head_end + 4 + length:
                return
            status = int(self.buffer[9:12])
            self.buffer = self.buffer[head_end + 4 + length :]
            self.done(self, status)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    with open(args.paths) as source:  # noqa: ASYNC230 - read before the load starts
        paths = [line.strip() for line in source if line.strip()]
    requests = [
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {args.token}\r\n\r\n".encode()
        for path in paths
    ]
    loop = asyncio.get_running_loop()
    clock = time.perf_counter
    idle: collections.deque[Connection] = collections.deque()
    waiting: collections.deque[tuple[int, float]] = collections.deque()
    in_flight: dict[Connection, float] = {}
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    finished = asyncio.Event()
    total = int(args.rate * args.duration)
    sent = 0

    def send(conn: Connection, n: int, due: float) -> None:
        in_flight[conn] = due
        assert conn.transport is not None
        conn.transport.write(requests[n % len(requests)])

    def done(conn: Connection, status: int) -> None:
        due = in_flight.pop(conn, None)
        if due is not None:
            statuses[status] += 1
            if status > 0:
                latencies.append(clock() - due)
        if not conn.lost:
            if waiting:
                n, due = waiting.popleft()
                send(conn, n, due)
            else:
                idle.append(conn)
        if len(latencies) + sum(v for k, v in statuses.items() if k <= 0) >= total:
            finished.set()

    for _ in range(args.connections):
        transport, protocol = await loop.create_connection(lambda: Connection(done), host, port)
        protocol.transport = transport
        idle.append(protocol)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = clock() + 0.05
    while sent < total:
        now = clock()
        due_count = min(total, int((now - start) * args.rate) + 1) if now >= start else 0
        while sent < due_count:
            due = start + sent / args.rate
            if idle:
                send(idle.popleft(), sent, due)
            else:
                waiting.append((sent, due))
            sent += 1
        await asyncio.sleep(max(0.001, start + sent / args.rate - clock()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished.wait(), timeout=30)
    elapsed = clock() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * q))], 2) if latencies else 0.0

    return {
        "offered_rate": args.rate,
        "achieved_rate": round(len(latencies) / elapsed, 1),
        "requests": total,
        "answered": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": round(1000 * latencies[-1], 2) if latencies else 0.0,
        "generator_cpu_s": round((usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime), 2),
    }


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
