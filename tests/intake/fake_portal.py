"""A local HTTPS server that answers Bitrix24's REST `user.admin` as a portal does, for intake's admin check.

TLS with a trustme CA (a certificate for `names`: host names or IP addresses), listening on one port of
each address in `hosts` (loopback addresses: 127.0.0.1 by default); plain asyncio streams, HTTP/1.1, one
request per connection. What it answers depends on the token (`auth` form field) it receives:

    tok-admin-*     200 {"result": true, "time": {...}}
    tok-user-*      200 {"result": false, "time": {...}}
    tok-expired-*   401 {"error": "expired_token", "error_description": "The access token provided has expired."}
    tok-garbage-*   200 <html>... (a maintenance page, not JSON)
    tok-redirect-*  302 to https://127.0.0.1/
    tok-slow-*      200 {"result": true} after 5 s
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import trustme

TIME = {"start": 1721998816.3694, "finish": 1721998816.43663, "duration": 0.0672, "processing": 0.00006}


@dataclass
class Seen:
    host: str
    path: str
    token: str
    sni: str | None


@dataclass
class FakePortal:
    names: tuple[str, ...]
    hosts: tuple[str, ...] = ("127.0.0.1",)
    ca: trustme.CA = field(default_factory=trustme.CA)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _servers: list[asyncio.Server] = field(default_factory=list)
    _sni: dict[int, str | None] = field(default_factory=dict)

    @property
    def ca_pem(self) -> str:
        return self.ca.cert_pem.bytes().decode("ascii")

    async def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*self.names).configure_cert(context)

        def remember_sni(ssl_object: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
            self._sni[id(ssl_object)] = name

        context.sni_callback = remember_sni  # type: ignore[assignment]
        first = await asyncio.start_server(self._serve, self.hosts[0], 0, ssl=context)
        self.port = first.sockets[0].getsockname()[1]
        self._servers = [first]
        for host in self.hosts[1:]:  # the same port on the other addresses
            self._servers.append(await asyncio.start_server(self._serve, host, self.port, ssl=context))

    async def stop(self) -> None:
        for server in self._servers:
            server.close()

    def tokens_seen(self, prefix: str) -> int:
        return sum(1 for s in self.seen if s.token.startswith(prefix))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _method, path, _version = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:] if ":" in h)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            token = parse_qs(body.decode())["auth"][0] if body else ""
            ssl_object = writer.get_extra_info("ssl_object")
            sni = self._sni.pop(id(ssl_object), None)  # the name the client asked for in its TLS hello
            self.seen.append(Seen(headers.get("host", ""), path, token, sni))
            status, extra, payload = await self._answer(token)
            reason = {200: "OK", 302: "Found", 401: "Unauthorized"}[status]
            head_out = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n"
            writer.write(f"{head_out}{extra}\r\n".encode() + payload)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _answer(self, token: str) -> tuple[int, str, bytes]:
        json_type = "Content-Type: application/json\r\n"
        if token.startswith("tok-admin-"):
            return 200, json_type, json.dumps({"result": True, "time": TIME}).encode()
        if token.startswith("tok-user-"):
            return 200, json_type, json.dumps({"result": False, "time": TIME}).encode()
        if token.startswith("tok-expired-"):
            body = {"error": "expired_token", "error_description": "The access token provided has expired."}
            return 401, json_type, json.dumps(body).encode()
        if token.startswith("tok-redirect-"):
            return 302, "Location: https://127.0.0.1/\r\n", b""
        if token.startswith("tok-slow-"):
            await asyncio.sleep(5)
            return 200, json_type, json.dumps({"result": True}).encode()
        return 200, "Content-Type: text/html\r\n", b"<html><body>The portal is being updated</body></html>"
