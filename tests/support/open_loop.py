"""Open-loop load at a constant rate (the wrk2 idea, in Python), shared by the benchmarks' generators
(tests/load/intake/openloop.py posts BotX webhooks, tests/load/queries/openloop_get.py GETs the query API,
tests/load/queries/ceiling.py sends the same queries' SQL): request i is due at start + i/rate whether or
not earlier answers have come back, and its latency is counted from when it was DUE, not from when a
connection became free to send it (no coordinated omission: a stalled server shows up as latency).

`http_open_loop` sends over keep-alive HTTP/1.1 connections; a due request takes any idle one, or waits in
a queue (its wait counts). `paced` runs any coroutine per request. Both report through `summary`: offered
and achieved rate, p50/p90/p99/p99.9/max in ms, answers by status, and the generator's own CPU seconds
(so its share of the 2 cores is known)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import resource
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

clock = time.perf_counter  # loop.time() is libuv's millisecond clock, cached per loop iteration


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary(
    rate: float, total: int, latencies: list[float], statuses: Mapping[str, int], elapsed: float, cpu: float
) -> dict[str, Any]:
    latencies = sorted(latencies)

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * q))], 2) if latencies else 0.0

    return {
        "offered_rate": rate,
        "achieved_rate": round(len(latencies) / elapsed, 1),
        "duration_s": round(elapsed, 2),
        "requests": total,
        "answered": len(latencies),
        "statuses": dict(statuses),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": round(1000 * latencies[-1], 2) if latencies else 0.0,
        "generator_cpu_s": round(cpu, 2),
    }


async def _schedule(rate: float, total: int, due: Callable[[int, float], None]) -> float:
    """Call `due(n, due_time)` for each request as it falls due; returns the start time."""
    start = clock() + 0.05
    sent = 0
    while sent < total:
        now = clock()
        due_count = min(total, int((now - start) * rate) + 1) if now >= start else 0
        while sent < due_count:
            due(sent, start + sent / rate)
            sent += 1
        # libuv timers have 1 ms resolution: a shorter sleep would spin. Requests falling due within the
        # millisecond go out together; their latency still counts from their own due times.
        await asyncio.sleep(max(0.001, start + sent / rate - clock()))
    return start


async def paced(rate: float, duration: float, one: Callable[[int], Awaitable[None]]) -> dict[str, Any]:
    """`one(n)` for request n at its due time, each in its own task; an exception counts as an error."""
    total = int(rate * duration)
    latencies: list[float] = []
    errors = 0
    tasks: list[asyncio.Task[None]] = []

    async def timed(n: int, due: float) -> None:
        nonlocal errors
        try:
            await one(n)
            latencies.append(clock() - due)
        except Exception:
            errors += 1

    cpu0 = cpu_seconds()
    start = await _schedule(rate, total, lambda n, due: tasks.append(asyncio.create_task(timed(n, due))))
    await asyncio.gather(*tasks)
    return summary(rate, total, latencies, {"ok": len(latencies), "errors": errors}, clock() - start,
                   cpu_seconds() - cpu0)  # fmt: skip


class _Connection(asyncio.Protocol):
    def __init__(self, done: Callable[[_Connection, int], None]) -> None:
        self.done = done  # callback(connection, status); status -1: the connection was lost
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


async def http_open_loop(
    host: str, port: int, request: Callable[[int], bytes], rate: float, duration: float, connections: int
) -> dict[str, Any]:
    """Request n (`request(n)`: the whole HTTP/1.1 message) at its due time over `connections` keep-alive
    connections; whatever is unanswered 30 s after the last one fell due is reported as such."""
    loop = asyncio.get_running_loop()
    idle: collections.deque[_Connection] = collections.deque()
    waiting: collections.deque[tuple[int, float]] = collections.deque()  # (n, due) with no idle connection
    in_flight: dict[_Connection, float] = {}
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    finished = asyncio.Event()
    total = int(rate * duration)

    def send(conn: _Connection, n: int, due: float) -> None:
        in_flight[conn] = due
        assert conn.transport is not None
        conn.transport.write(request(n))

    def done(conn: _Connection, status: int) -> None:
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

    def due(n: int, at: float) -> None:
        if idle:
            send(idle.popleft(), n, at)
        else:
            waiting.append((n, at))

    for _ in range(connections):
        transport, protocol = await loop.create_connection(lambda: _Connection(done), host, port)
        protocol.transport = transport  # uvloop may call connection_made only after create_connection returns
        idle.append(protocol)
    cpu0 = cpu_seconds()
    start = await _schedule(rate, total, due)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished.wait(), timeout=30)
    answered = {str(k): v for k, v in sorted(statuses.items())}
    return {**summary(rate, total, latencies, answered, clock() - start, cpu_seconds() - cpu0),
            "connections": connections}  # fmt: skip
