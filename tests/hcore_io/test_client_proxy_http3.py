"""HTTP/3 asked for through a proxy: the pool goes over TCP instead.

Tunnelling QUIC through an HTTP proxy needs CONNECT-UDP (RFC 9298), which
few proxies speak; like curl, the pool then uses the proxy's ``CONNECT``
tunnel over TCP with HTTP/2 (by ALPN) or HTTP/1.1, both when HTTP/3 alone
was asked for and when an origin advertises it with ``Alt-Svc``.  Every
test runs on asyncio and Trio and on both socket backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from hcore import Address, ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols.http1 import HTTP1ServerFactory
from hcore_io.client import Client, ConnectionPool
from hcore_io.connections import HTTPConnection, HTTPOverTCPListener

from .client_helpers import client_server
from .conftest import SocketBackend

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def _proxy(
    networking: SocketBackend, authorities: list[str]
) -> AsyncIterator[Address]:
    """An HTTP/1.1 CONNECT proxy (TCP only) recording the authorities asked for."""

    async def tunnel(connection: HTTPConnection) -> None:
        stream = await connection.accept_stream()
        if stream is None:
            return
        first = await stream.receive_event()
        assert isinstance(first, HeadersReceived)
        authority = dict(first.headers)[b":authority"].decode()
        authorities.append(authority)
        host, _, port = authority.rpartition(":")
        upstream = await networking.connect_tcp((host, int(port)))
        await stream.send_headers([(b":status", b"200")])

        async def client_to_origin() -> None:
            # Bounded by the tunnel's bytes.
            async for event in stream:
                if isinstance(event, DataReceived) and event.data:
                    await upstream.send(event.data)
            group.cancel_scope.cancel()

        async def origin_to_client() -> None:
            try:
                # Bounded by the origin's bytes.
                while True:
                    await stream.send_data(await upstream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
            group.cancel_scope.cancel()

        async with upstream, anyio.create_task_group() as group:
            group.start_soon(client_to_origin)
            group.start_soon(origin_to_client)

    listener = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(), networking, local_address=("127.0.0.1", 0)
    )
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, tunnel)
        try:
            yield listener.local_addresses[0]
        finally:
            await listener.aclose()
            group.cancel_scope.cancel()


async def test_http3_only_through_a_proxy_falls_back_to_tcp(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    authorities: list[str] = []
    async with (
        client_server(networking, server_tls_config, quic=True) as server,
        _proxy(networking, authorities) as proxy,
    ):
        async with Client(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=("3",),
            proxy=f"http://127.0.0.1:{proxy[1]}",
        ) as client:
            response = await client.get(server.url("/ok", tls=True))
            assert response.content == b"ok"
            # HTTP/2 by ALPN, through the tunnel; never QUIC.
            assert response.http_version == "2"
        assert authorities == [f"localhost:{server.tls[1]}"]
        assert server.app.connections == {"tls": 1}


async def test_alt_svc_is_not_followed_through_a_proxy(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    authorities: list[str] = []
    async with (
        client_server(networking, server_tls_config, quic=True) as server,
        _proxy(networking, authorities) as proxy,
    ):
        assert server.quic is not None
        pool = ConnectionPool(
            networking,
            tls_config=client_tls_config,
            proxy=f"http://127.0.0.1:{proxy[1]}",
        )
        assert pool.alt_svc is None
        async with pool, Client(pool=pool) as client:
            advertised = f"/alt-svc?port={server.quic[1]}"
            first = await client.get(server.url(advertised, tls=True))
            assert first.get_header(b"alt-svc") is not None
            second = await client.get(server.url("/ok", tls=True))
            assert (first.http_version, second.http_version) == ("2", "2")
        # Both requests went through the one tunnel; the QUIC listener saw nothing.
        assert authorities == [f"localhost:{server.tls[1]}"]
        assert server.app.connections == {"tls": 1}
