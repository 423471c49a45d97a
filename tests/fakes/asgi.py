"""Serve a Starlette app with uvicorn inside the running event loop, on an ephemeral port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trustme
import uvicorn
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

NAME = "portal.test"


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner owns the signals
        yield


@asynccontextmanager
async def serve(app: ASGIApp, port: int = 0, *, tls: trustme.CA | None = None) -> AsyncIterator[str]:
    """Yield the base URL (`http://127.0.0.1:<port>`) while the app serves (port 0: an ephemeral one).
    With `tls`: HTTPS (`https://127.0.0.1:<port>`) with a certificate for 127.0.0.1 and `NAME` (a name
    tests resolve to 127.0.0.1 themselves) issued by that CA."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    with tempfile.NamedTemporaryFile(suffix=".pem") as pem:
        if tls is not None:
            tls.issue_cert("127.0.0.1", NAME).private_key_and_cert_chain_pem.write_to_path(pem.name)
        certificate = {"ssl_certfile": pem.name} if tls is not None else {}
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, **certificate)  # type: ignore[arg-type]
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            for _ in range(500):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.01)
            if task.done():
                task.result()  # surface the start-up error
            yield f"{'https' if tls is not None else 'http'}://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            server.force_exit = True  # do not linger over idle keep-alive connections
            await task
            sock.close()


@dataclass
class Fault:
    status: int
    body: bytes | str | dict[str, Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to stall before answering (to provoke client timeouts)

    async def response(self) -> Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(self.body, dict):
            return JSONResponse(self.body, status_code=self.status, headers=self.headers)
        return Response(self.body, status_code=self.status, headers=self.headers)


class Faults:
    """A queue of canned answers served before the fake's normal behaviour, one per request."""

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self.served = 0

    def add(self, fault: Fault, times: int = 1) -> None:
        self._queue.extend(fault for _ in range(times))

    def take(self) -> Fault | None:
        if not self._queue:
            return None
        self.served += 1
        return self._queue.popleft()
