"""The TLS handshake timeout of a server, crossed through real sockets.

Clients connect to an ASGIServer's TLS port and stall the handshake: one
sends nothing at all, one sends half of a real ClientHello.  With a 1 s
bound each is dropped (the client sees its connection end), not before the
bound and long before the 10 s default; while they wait and after they are
gone, normal TLS requests (HTTP/1.1 and HTTP/2 by ALPN) are served.

The bound is given two ways: ``Limits(tls_handshake_timeout=...)`` to a
server that makes its own backend (``SystemNetworking``: the server's
field applies only then), and the backend's own ``tls_handshake_timeout``
for a server given ``networking=`` (both socket backends).  The clients
always use the backend under test; every test runs on asyncio and Trio.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import ByteStream

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.protocols.http1 import HTTP1ClientFactory
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore_io import Limits
from hcore_io.connections import HTTPOverTCPOpener
from hcore_io.server import ASGIServer

from .conftest import SocketBackend, SocketNetworkingClass
from .server_apps import app
from .server_helpers import fetch

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

# Small, yet roomy enough for the normal clients' handshakes on a loaded
# machine (they are dropped too if they take longer).
_HANDSHAKE_TIMEOUT = 1.0
# Far below the 10 s default: a server that ignored the bound would miss it.
_DROPPED_WITHIN = 5.0


def _client_hello(client_tls: ClientTLSConfig) -> bytes:
    """The bytes of a real ClientHello for ``localhost`` (with ALPN)."""
    context = ssl.create_default_context(cafile=client_tls.cafile)
    context.set_alpn_protocols(["h2", "http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16"  # RFC 8446 §5.1: a handshake record
    return hello


@asynccontextmanager
async def _server(
    server_tls: ServerTLSConfig, server_networking: SocketBackend | None
) -> AsyncIterator[int]:
    """An ASGIServer on https (TCP only); yield its port."""
    server = ASGIServer(
        app,
        tls_config=server_tls,
        networking=server_networking,
        http3=False,
        limits=Limits(tls_handshake_timeout=_HANDSHAKE_TIMEOUT),
    )
    async with anyio.create_task_group() as group:
        [endpoint] = await group.start(server.serve, ["https://127.0.0.1:0"])
        try:
            yield endpoint.port
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await server.shutdown(timeout=1)
            group.cancel_scope.cancel()


async def _served(
    port: int, client_tls: ClientTLSConfig, networking: SocketBackend
) -> None:
    """A normal TLS request on each TCP version succeeds."""
    for factory, version in (
        (HTTP1ClientFactory(), "1.1"),
        (HTTP2ClientFactory(), "2"),
    ):
        opener = HTTPOverTCPOpener(
            factory, networking=networking, tls_config=client_tls
        )
        with anyio.fail_after(10):
            async with await opener(
                ("127.0.0.1", port), server_name="localhost"
            ) as connection:
                assert connection.http_version == version
                response = await fetch(connection, "GET", "/")
        assert (response.status, response.body) == (200, b"hello")


async def _dropped(stream: ByteStream) -> None:
    """Wait until the server drops the connection; it sends nothing before."""
    with anyio.fail_after(_DROPPED_WITHIN):
        try:
            data = await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return
    # A TLS alert is all a server may say to a stalled handshake.
    assert data[:1] == b"\x15", data
    with (
        anyio.fail_after(_DROPPED_WITHIN),
        pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)),
    ):
        # Bounded: the server closes after its alert.
        for _ in range(10):
            await stream.receive()


async def _cross(
    port: int, client_tls: ClientTLSConfig, networking: SocketBackend
) -> None:
    """Stall two handshakes; both are dropped; others are served meanwhile."""
    hello = _client_hello(client_tls)
    with anyio.fail_after(10):
        silent = await networking.connect_tcp(("127.0.0.1", port))
        partial = await networking.connect_tcp(("127.0.0.1", port))
    started = anyio.current_time()
    async with silent, partial:
        await partial.send(hello[: len(hello) // 2])
        # Served while the two stalled clients still wait.
        await _served(port, client_tls, networking)
        async with anyio.create_task_group() as group:
            group.start_soon(_dropped, silent)
            group.start_soon(_dropped, partial)
        # Not before the bound (a little slack for the clocks' rounding).
        assert anyio.current_time() - started >= _HANDSHAKE_TIMEOUT * 0.9
    # And right after they were dropped.
    await _served(port, client_tls, networking)


async def test_server_limit_drops_stalled_handshakes(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    """``Limits.tls_handshake_timeout`` of a server making its own backend."""
    async with _server(server_tls_config, None) as port:
        await _cross(port, client_tls_config, networking)


async def test_backend_bound_drops_stalled_handshakes(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
    networking_class: SocketNetworkingClass,
) -> None:
    """A server given a backend uses the backend's own bound."""
    server_networking = networking_class(tls_handshake_timeout=_HANDSHAKE_TIMEOUT)
    async with _server(server_tls_config, server_networking) as port:
        await _cross(port, client_tls_config, networking)


async def test_many_stalled_handshakes_do_not_block_the_server(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
    networking_class: SocketNetworkingClass,
) -> None:
    """Twenty silent clients at once: each is dropped, none holds up another."""
    server_networking = networking_class(tls_handshake_timeout=_HANDSHAKE_TIMEOUT)
    async with _server(server_tls_config, server_networking) as port:
        with anyio.fail_after(10):
            silent = [
                await networking.connect_tcp(("127.0.0.1", port)) for _ in range(20)
            ]
        try:
            await _served(port, client_tls_config, networking)
            async with anyio.create_task_group() as group:
                for stream in silent:
                    group.start_soon(_dropped, stream)
        finally:
            for stream in silent:
                await stream.aclose()
        await _served(port, client_tls_config, networking)
