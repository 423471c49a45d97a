from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
from preflight_fakes import STABLE_FEED, Certificates, PortalServer, Route, ServeFactory, make_certificates
from support.netguard import LOOPBACK_ALLOWED

from ticketflow.preflight.adapters.checks import ChecksConfig


@pytest.fixture(scope="session")
def certs() -> Certificates:
    return make_certificates()


@pytest.fixture
def config(certs: Certificates) -> ChecksConfig:
    return ChecksConfig(
        # Long enough for a healthy loopback check on a loaded 2-core box (1 s was not: a healthy check
        # timed out beside a hanging one); the hang tests wait this long.
        timeout_s=3.0,
        max_redirects=3,
        max_body_bytes=64 * 1024,
        stable_versions=STABLE_FEED,
        address_policy=LOOPBACK_ALLOWED,
        extra_trusted_ca_pem=certs.ca_pem,
        allowed_ports=None,  # the test portals listen on random ports
    )


@pytest.fixture
async def serve() -> AsyncIterator[ServeFactory]:
    """Start portal servers for one test; all stop at its end."""
    started: list[PortalServer] = []

    async def start(
        context: ssl.SSLContext | None, routes: dict[str, Route], *, tls_hang: bool = False
    ) -> PortalServer:
        server = await PortalServer(context, routes, tls_hang=tls_hang).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()
