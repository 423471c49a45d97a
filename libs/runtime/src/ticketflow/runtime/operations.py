"""The operations port: `GET /metrics` (Prometheus text, prometheus_client's default registry),
`/health/live` and `/health/ready`, on a port of its own (`TICKETFLOW_<SERVICE>_OPS_PORT`, default the
HTTP port + 100), so scrapes and probes never share the public webhook port (which a firewall may open
to the chat platforms) and the public port exposes no internals.

A second uvicorn server in the service's event loop, started before the service's start-up (readiness
answers "not finished" meanwhile) and stopped after its shutdown. No signal handling of its own: the
public server's uvicorn owns SIGTERM and runs the lifespan that stops this one."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the public server's uvicorn owns the signals
        yield


class OperationsStartError(RuntimeError):
    """The operations port could not be bound (in use, not allowed): the service does not start."""


def operations_app(live: Endpoint, ready: Endpoint, *, metrics: bool) -> Starlette:
    async def scrape(_: Request) -> Response:
        if not metrics:
            return JSONResponse({"error": "metrics are off (TICKETFLOW_METRICS=false)"}, 404)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/metrics", scrape), Route("/health/live", live), Route("/health/ready", ready)]
    return Starlette(routes=routes)


class OperationsServer:
    def __init__(self, host: str, port: int, live: Endpoint, ready: Endpoint, *, metrics: bool) -> None:
        self.host, self.port = host, port
        config = uvicorn.Config(operations_app(live, ready, metrics=metrics), lifespan="off", access_log=False,
                                log_config=None)  # fmt: skip
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as error:
            sock.close()
            raise OperationsStartError(f"operations port {self.host}:{self.port}: {error}") from error
        self._socket = sock
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started and not self._task.done():  # noqa: ASYNC110 - uvicorn sets a flag
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # its start-up error

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        if self._socket is not None:
            self._socket.close()
