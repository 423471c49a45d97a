"""Open-loop HTTP load at a constant rate (the wrk2 idea, in Python): request i is due at start + i/rate
whether or not earlier answers have come back, and its latency is counted from when it was DUE, not from
when a connection became free to send it (no coordinated omission: a stalled server shows up as latency).

Requests go over `--connections` keep-alive HTTP/1.1 connections; a due request takes any idle one, or
waits in a queue (its wait counts). The body is the BotX template of bench_intake.py with a fresh
`sync_id` per request. Prints one JSON line: offered and achieved rate, p50/p90/p99/p99.9/max in ms,
answers by status, errors, and this generator's own CPU seconds (so its share of the 2 cores is known).

Usage (bench_intake.py runs it): python openloop.py --url http://127.0.0.1:PORT/command --rate 3000
    --duration 15 --connections 64 --template FILE (JSON with p0/p1/p2/token/nonce/conversations)
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
        self.done = done  # callback(connection, status)
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
    template = json.loads(open(args.template).read())  # noqa: ASYNC230, SIM115 - before the load starts
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

    loop = asyncio.get_running_loop()
    clock = time.perf_counter  # loop.time() is libuv's millisecond clock, cached per loop iteration
    idle: collections.deque[Connection] = collections.deque()
    waiting: collections.deque[tuple[int, float]] = collections.deque()  # (n, due) with no idle connection
    in_flight: dict[Connection, float] = {}
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    finished = asyncio.Event()
    total = int(args.rate * args.duration)
    sent = 0

    def send(conn: Connection, n: int, due: float) -> None:
        in_flight[conn] = due
        assert conn.transport is not None
        conn.transport.write(request(n))

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
        protocol.transport = transport  # uvloop may call connection_made only after create_connection returns
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
        # libuv timers have 1 ms resolution: a shorter sleep would spin. Requests falling due within the
        # millisecond go out together; their latency still counts from their own due times.
        await asyncio.sleep(max(0.001, start + sent / args.rate - clock()))
    with contextlib.suppress(TimeoutError):  # whatever is unanswered after 30 s is reported as such
        await asyncio.wait_for(finished.wait(), timeout=30)
    elapsed = clock() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * q))], 2) if latencies else 0.0

    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {
        "offered_rate": args.rate,
        "achieved_rate": round(len(latencies) / elapsed, 1),
        "duration_s": round(elapsed, 2),
        "connections": args.connections,
        "requests": total,
        "answered": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": round(1000 * latencies[-1], 2) if latencies else 0.0,
        "generator_cpu_s": round(cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=3000)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--template", required=True)
    args = parser.parse_args()
    result = uvloop.run(run(args))
    print("OPENLOOP " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
