"""The pool and the client speak HTTP/1.1 through a registered implementation.

``http1_implementation="httptools"`` makes the pool's HTTP/1.1 connections
use the llhttp-parsed client protocol; the same requests then behave as
they do on h11.  Runs on asyncio and Trio, on both socket backends.
"""

from __future__ import annotations

import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.protocols.http1 import HTTP1ClientFactory, HTTPToolsClientFactory
from hcore_io.client import URL, Client, ConnectionPool, Request, Timeouts
from hcore_io.networking import EpollNetworking, SystemNetworking

from .client_helpers import client_server, pattern

pytestmark = pytest.mark.anyio


async def test_pool_uses_the_named_implementation(
    networking: SystemNetworking | EpollNetworking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(
            networking,
            tls_config=client_tls_config,
            http_versions=("1.1",),
            http1_implementation="httptools",
        ) as pool,
    ):
        assert isinstance(pool._http1_factory(), HTTPToolsClientFactory)
        for size in (0, 1000, 3 << 20):
            response = await pool.handle_request(
                Request("GET", URL(server.url(f"/bytes/{size}")), timeouts=Timeouts())
            )
            assert response.status == 200 and response.http_version == "1.1"
            assert await response.aread() == pattern(size)
        # Keep-alive: one connection for the three exchanges.
        assert server.app.connections == {"tcp": 1}
        assert pool.metrics.connections[0].completed == 3


async def test_client_sends_bodies_through_it(
    networking: SystemNetworking | EpollNetworking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config) as server,
        Client(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=("1.1",),
            http1_implementation="httptools",
        ) as client,
    ):
        body = pattern(1 << 20)
        response = await client.post(server.url("/echo", tls=True), content=body)
        assert response.http_version == "1.1"
        assert await response.aread() == body
        response = await client.get(server.url("/close"))
        assert response.status == 200
        response = await client.get(server.url("/ok"))
        assert await response.aread() == b"ok"


async def test_default_and_unknown_names(
    networking: SystemNetworking | EpollNetworking,
) -> None:
    async with ConnectionPool(networking) as pool:
        assert type(pool._http1_factory()) is HTTP1ClientFactory
    with pytest.raises(ValueError, match=r"no HTTP/1\.1 implementation named 'nope'"):
        ConnectionPool(networking, http1_implementation="nope")
