"""Real HTTPS servers on 127.0.0.1 playing Bitrix24 portals, and a DNS-rebinding resolver."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.netguard import StaticResolver

from ticketflow.bitrix24 import BadAnswer, ForbiddenAddress, RestError, Unavailable
from ticketflow.preflight.adapters.checks import ChecksConfig, PortalAsk, Resolver
from ticketflow.preflight.adapters.checks.guarded_http import FetchFailure, FetchTrace, guarded_get
from ticketflow.preflight.adapters.checks.policy import IPAddress

PORTAL_NAME = "portal.test"


class RebindingResolver(StaticResolver):
    """Answers as told on the first lookup of a name, then an internal address: a DNS-rebinding attacker."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        answer = await super().resolve(host, port)
        return answer if self.calls[host] == 1 else [ipaddress.ip_address("10.9.9.9")]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # accept the request, never answer
    endless: bool = False  # announce a huge body and keep sending


Route = Reply | Callable[[str], Reply]


def json_reply(document: object, status: int = 200) -> Reply:
    return Reply(status=status, body=json.dumps(document).encode(), content_type="application/json")


def portal_info_document(
    *,
    license_code: str = "ru_corp",
    demo: bool = False,
    active_until: str = "2099-12-31",
    modules: dict[str, str] | None = None,
) -> dict[str, object]:
    return {
        "result": {
            "LICENSE": license_code,
            "LICENSE_TYPE": "demo" if demo else "corp",
            "LICENSE_DEMO": demo,
            "LICENSE_ACTIVE_UNTIL": active_until,
            "MODULES": modules or {"main": "25.100.300", "im": "25.0.100", "rest": "25.0.0"},
        },
        "time": {"start": 1.0, "finish": 1.01},
    }


STABLE_FEED = {"main": "25.100.300", "im": "25.0.100", "rest": "25.0.0"}


def healthy_routes() -> dict[str, Route]:
    return {
        "/": Reply(body=b"<html>Bitrix24</html>"),
        "/pub/": Reply(body=b"<html>public</html>"),
        "/rest/": json_reply({"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization"}, 401),
        "/rest/ticketflow.portal.info.json": json_reply(portal_info_document()),
    }


class PortalServer:
    """An HTTPS (or plain TCP) server on 127.0.0.1 with a route table; records what it was asked."""

    def __init__(self, context: ssl.SSLContext | None, routes: dict[str, Route], *, tls_hang: bool = False):
        self.context = context
        self.routes = routes
        self.tls_hang = tls_hang
        self.requests: list[tuple[str, str]] = []  # (target, Host header)
        self.server_names: list[str | None] = []
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0
        if context is not None:
            context.sni_callback = self._on_sni

    def _on_sni(self, _sock: object, name: str | None, _ctx: object) -> None:
        self.server_names.append(name)

    async def start(self) -> PortalServer:
        # A server that must hang before TLS is a plain TCP listener that never speaks.
        ssl_arg = None if self.tls_hang else self.context
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=ssl_arg)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, name: str = PORTAL_NAME) -> str:
        return f"https://{name}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            if self.tls_hang:
                await asyncio.sleep(3600)
            if self.context is None and (await reader.readexactly(1)) == b"\x16":
                # A plain HTTP server receiving a TLS ClientHello answers 400, as nginx does.
                writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            host = next((ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("host:")), "")
            self.requests.append((target, host))
            route = self.routes.get(target.split("?", 1)[0], Reply(status=404, body=b"<h1>Not found</h1>"))
            reply = route(target) if callable(route) else route
            await self._send(writer, reply)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, IndexError):
            pass
        finally:
            writer.transport.abort()
            self._tasks.discard(task)

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        if reply.hang:
            await asyncio.sleep(3600)
        length = 10**9 if reply.endless else len(reply.body)
        head = [
            f"HTTP/1.1 {reply.status} X",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {length}",
        ]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        writer.write(("\r\n".join([*head, "Connection: close", "", ""])).encode("latin-1"))
        if reply.endless:
            chunk = b"x" * 65536
            while True:  # until the client hangs up
                writer.write(chunk)
                await writer.drain()
        writer.write(reply.body)
        await writer.drain()


@dataclass
class Certificates:
    ca: trustme.CA
    valid: ssl.SSLContext
    wrong_host: ssl.SSLContext
    expired: ssl.SSLContext
    self_signed: ssl.SSLContext

    @property
    def ca_pem(self) -> str:
        return self.ca.cert_pem.bytes().decode()


def _server_context() -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)


def make_certificates() -> Certificates:
    ca = trustme.CA()
    valid, wrong, expired = _server_context(), _server_context(), _server_context()
    ca.issue_cert(PORTAL_NAME, "*.portal.test").configure_cert(valid)
    ca.issue_cert("other.test").configure_cert(wrong)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    ca.issue_cert(PORTAL_NAME, not_before=past, not_after=past + dt.timedelta(days=1)).configure_cert(expired)
    self_signed = _server_context()
    cert_pem, key_pem = _self_signed_pem(PORTAL_NAME)
    with _temp_pem(cert_pem + key_pem) as path:
        self_signed.load_cert_chain(path)
    return Certificates(ca=ca, valid=valid, wrong_host=wrong, expired=expired, self_signed=self_signed)


def _self_signed_pem(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class _temp_pem:
    def __init__(self, data: bytes) -> None:
        import tempfile

        self._file = tempfile.NamedTemporaryFile(suffix=".pem")  # noqa: SIM115
        self._file.write(data)
        self._file.flush()

    def __enter__(self) -> str:
        return self._file.name

    def __exit__(self, *_exc: object) -> None:
        self._file.close()


ServeFactory = Callable[..., Awaitable[PortalServer]]


def rest_ask(url: str, config: ChecksConfig, resolver: Resolver, token: str = "token-123") -> PortalAsk:
    """A portal's REST as the runner asks it, served by a PortalServer (`GET /rest/<method>.json?auth=`),
    with the errors ticketflow.bitrix24's client raises. The service's own path (the install's tokens)
    is tested against the fake Bitrix24 platform: test_service_preflight.py."""

    async def ask(method: str) -> object:
        try:
            answer = await guarded_get(f"{url}/rest/{method}.json?auth={token}", resolver=resolver, config=config,
                                       trace=FetchTrace())  # fmt: skip
        except FetchFailure as exc:
            refused = exc.reason.startswith("forbidden")
            raise (ForbiddenAddress if refused else Unavailable)(exc.reason, exc.detail) from exc
        try:
            document = json.loads(answer.body)
        except ValueError as exc:
            raise BadAnswer("not_json", answer.body[:60].decode("utf-8", "replace")) from exc
        if isinstance(document, dict) and "error" in document:
            raise RestError(str(document["error"]), str(document.get("error_description", "")), answer.status)
        return document.get("result") if isinstance(document, dict) else document

    return ask
