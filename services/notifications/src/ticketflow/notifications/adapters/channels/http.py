"""One HTTP client for the Bitrix24 and webhook channels: aiohttp's ClientSession, kept for the process.

Why not httpx (which pybotx still uses for eXpress): measured in the end-to-end benchmark, an httpx POST
cost about 1.1 ms of CPU on this service's path, most of it in httpcore's pool (every request scans every
pooled connection and polls each idle socket) and anyio's stream wrappers, so the cost grew with the
concurrency per destination. aiohttp's connector keeps idle connections per host in a list and its
HTTP parser is compiled. See docs/notifications.md and docs/benchmarks.md.

The session is created on first use (aiohttp binds it to the running loop), keeps connections alive
per host (`max_per_host` at most, matching the engine's per-destination concurrency; an idle one at most
`base.KEEPALIVE_S`, 2 s, shorter than servers keep theirs) and answers a
plain `HttpAnswer`: the channels classify status and body themselves. Transport problems are told apart
by whether the request may have left: no connection (refused, unresolvable, no connection in time) is a
`TemporaryFailure` (nothing was sent: safe to send again); no answer in time, or a connection lost after
the request was written, is an `OutcomeUnknown` (the platform may have acted on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from ticketflow.notifications.adapters.channels.base import (
    KEEPALIVE_S,
    OutcomeUnknown,
    PermanentFailure,
    TemporaryFailure,
)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class HttpClient:
    def __init__(self, *, timeout: float = 10.0, max_connections: int = 256, max_per_host: int = 64) -> None:
        # connect covers waiting for a pooled connection too; sock_read bounds a silent server.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout)
        self._max_connections = max_connections
        self._max_per_host = max_per_host
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=self._max_per_host,
                                             keepalive_timeout=KEEPALIVE_S)  # fmt: skip
            # No cookies (a platform's Set-Cookie must not follow us to the next request), no
            # proxies from the environment, no automatic redirects for POSTs.
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                  cookie_jar=aiohttp.DummyCookieJar())  # fmt: skip
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, what: str) -> HttpAnswer:
        """POST `body`; `what` names the channel in failure reasons ("bitrix24", "webhook")."""
        try:
            async with self._open().post(url, data=body, headers=headers, allow_redirects=False) as response:
                return HttpAnswer(response.status, response.headers, await response.read())
        except aiohttp.ConnectionTimeoutError as exc:  # no connection in time (the pool's wait included)
            raise TemporaryFailure(f"{what}: timeout connecting ({type(exc).__name__})") from exc
        except aiohttp.ClientConnectorError as exc:  # refused, unresolvable, TLS handshake: nothing sent
            raise TemporaryFailure(f"{what}: connection error ({type(exc).__name__})") from exc
        except aiohttp.InvalidURL as exc:
            raise PermanentFailure(f"{what}: invalid address ({exc})") from exc
        except TimeoutError as exc:  # connected and written, no answer in time
            raise OutcomeUnknown(f"{what}: no answer in time ({type(exc).__name__})") from exc
        except (aiohttp.ClientError, OSError) as exc:  # the connection went away after the request left
            raise OutcomeUnknown(f"{what}: connection lost after sending ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
