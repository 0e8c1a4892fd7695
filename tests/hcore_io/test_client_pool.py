"""ConnectionPool: reuse, sharing, limits, expiry and metrics.

Every test runs on asyncio and Trio; most on both networking backends
(MemoryNetworking and SystemNetworking), against the listeners of
``client_helpers``, which count the connections they accept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io import NetworkError, PoolTimeout
from hcore_io.client import (
    URL,
    ConnectionPool,
    ConnectionState,
    Request,
    Timeouts,
)
from hcore_io.networking import EpollNetworking, MemoryNetworking, SystemNetworking

from .client_helpers import client_server, pattern

pytestmark = pytest.mark.anyio

Networking = MemoryNetworking | SystemNetworking | EpollNetworking


@pytest.fixture(params=["memory", "system", "epoll"])
def networking(request: pytest.FixtureRequest) -> Networking:
    """Each backend in turn."""
    if request.param == "memory":
        return MemoryNetworking()
    if request.param == "epoll":
        return EpollNetworking()
    return SystemNetworking()


async def _get(
    client_pool: ConnectionPool, url: str, timeouts: Timeouts | None = None
) -> bytes:
    response = await client_pool.handle_request(
        Request("GET", URL(url), timeouts=timeouts or Timeouts())
    )
    assert response.status == 200, response
    return await response.aread()


async def test_http1_connection_is_reused(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(networking, tls_config=client_tls_config) as pool,
    ):
        for _ in range(5):
            assert await _get(pool, server.url("/bytes/1000")) == pattern(1000)
        assert server.app.connections == {"tcp": 1}
        metrics = pool.metrics
        assert (metrics.created, metrics.requests) == (1, 5)
        assert metrics.total_connections == 1
        (connection,) = metrics.connections
        assert connection.http_version == "1.1"
        assert connection.requests == connection.completed == 5
        assert connection.state is ConnectionState.IDLE
        assert connection.bytes_received > 5000 and connection.bytes_sent > 0
        assert connection.error_rate == 0.0
        assert connection.average_request_time > 0
        assert metrics.connections_per_host == {connection.origin: 1}


async def test_http2_by_alpn_shares_one_connection_among_200_requests(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    versions: set[str] = set()
    async with (
        client_server(
            networking, server_tls_config, max_concurrent_streams=256
        ) as server,
        ConnectionPool(
            networking, tls_config=client_tls_config, max_requests_per_connection=500
        ) as pool,
    ):

        async def one(index: int) -> None:
            response = await pool.handle_request(
                Request("GET", URL(server.url(f"/bytes/{index}", tls=True)))
            )
            versions.add(response.http_version)
            assert await response.aread() == pattern(index)

        async with anyio.create_task_group() as group:
            for index in range(200):
                group.start_soon(one, index)
        assert versions == {"2"}
        assert server.app.connections == {"tls": 1}
        assert pool.metrics.created == 1
        assert pool.metrics.connections[0].requests == 200


async def test_stream_limit_opens_more_connections_within_the_host_limit(
    server_tls_config: ServerTLSConfig, client_tls_config: ClientTLSConfig
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(
            networking, server_tls_config, max_concurrent_streams=4
        ) as server,
        ConnectionPool(
            networking, tls_config=client_tls_config, max_connections_per_host=3
        ) as pool,
    ):
        url = server.url("/slow?delay=0.2", tls=True)
        # The server's SETTINGS come with the first exchange.
        await _get(pool, server.url("/ok", tls=True))
        async with anyio.create_task_group() as group:
            for _ in range(12):
                group.start_soon(_get, pool, url)
        assert server.app.connections == {"tls": 3}
        assert server.app.open_peak == 3


async def test_http1_limits_are_respected(
    server_tls_config: ServerTLSConfig, client_tls_config: ClientTLSConfig
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(
            networking,
            tls_config=client_tls_config,
            max_connections=3,
            max_connections_per_host=2,
        ) as pool,
    ):
        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(_get, pool, server.url("/slow?delay=0.05"))
        assert server.app.connections == {"tcp": 2}
        assert server.app.open_peak == 2
        # Another origin (the TLS port) may use the third connection only.
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(_get, pool, server.url("/slow?delay=0.05"))
                group.start_soon(_get, pool, server.url("/slow?delay=0.05", tls=True))
        assert pool.metrics.total_connections <= 3
        assert server.app.open_peak <= 3


async def test_pool_timeout_while_every_connection_is_busy(
    server_tls_config: ServerTLSConfig,
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(networking, max_connections=1) as pool,
    ):
        busy = await pool.handle_request(Request("GET", URL(server.url("/slow-body"))))
        started = anyio.current_time()
        with pytest.raises(PoolTimeout):
            await _get(pool, server.url("/ok"), Timeouts(pool=0.2))
        assert 0.15 < anyio.current_time() - started < 2.0
        await busy.aclose()
        # Closing the unfinished response closed its HTTP/1.1 connection.
        assert await _get(pool, server.url("/ok"), Timeouts(pool=1.0)) == b"ok"
        assert server.app.connections == {"tcp": 2}


async def test_keep_alive_timeout_expires_idle_connections(
    server_tls_config: ServerTLSConfig,
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(networking, keep_alive_timeout=0.1) as pool,
    ):
        await _get(pool, server.url("/ok"))
        await _get(pool, server.url("/ok"))
        assert server.app.connections == {"tcp": 1}
        await anyio.sleep(0.2)
        await _get(pool, server.url("/ok"))
        assert server.app.connections == {"tcp": 2}
        assert pool.metrics.closed == 1


async def test_connection_close_and_max_requests_retire_connections(
    server_tls_config: ServerTLSConfig,
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(networking, max_requests_per_connection=2) as pool,
    ):
        await _get(pool, server.url("/close"))
        await _get(pool, server.url("/ok"))
        assert server.app.connections == {"tcp": 2}
        for _ in range(4):
            await _get(pool, server.url("/ok"))
        # The second connection served 2 requests, then two more came on a third.
        assert server.app.connections == {"tcp": 4}
        assert pool.metrics.created == 4


async def test_connection_closed_by_server_while_idle_is_not_reused(
    networking: Networking, server_tls_config: ServerTLSConfig
) -> None:
    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(networking) as pool,
    ):
        await _get(pool, server.url("/then-close"))
        await anyio.sleep(0.2)
        # SystemNetworking sees the socket readable before reuse; memory
        # streams cannot tell, so the request fails on the stale connection
        # before any response and is retried once on a new one.
        assert await _get(pool, server.url("/ok")) == b"ok"
        assert server.app.connections == {"tcp": 2}
        assert pool.metrics.connections[-1].errors == 0


async def test_h2c_prior_knowledge_and_closing_the_pool(
    server_tls_config: ServerTLSConfig,
) -> None:
    networking = MemoryNetworking()
    async with client_server(networking, server_tls_config) as server:
        pool = ConnectionPool(networking, http2_prior_knowledge=True)
        async with pool:
            response = await pool.handle_request(Request("GET", URL(server.url("/ok"))))
            assert response.http_version == "2"
            assert await response.aread() == b"ok"
        assert pool.metrics.total_connections == 0
        assert pool.metrics.closed == 1
        with pytest.raises(Exception, match="closed"):
            await _get(pool, server.url("/ok"))


async def test_streamed_upload_and_trailers_free_connection(
    server_tls_config: ServerTLSConfig, client_tls_config: ClientTLSConfig
) -> None:
    networking = MemoryNetworking()

    async def body() -> AsyncIterator[bytes]:
        for index in range(5):
            yield pattern(100_000 + index)

    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(networking, tls_config=client_tls_config) as pool,
    ):
        for url in (server.url("/echo"), server.url("/echo", tls=True)):
            response = await pool.handle_request(Request("POST", URL(url), body=body()))
            received = b"".join([chunk async for chunk in response.stream])
            assert received == b"".join(pattern(100_000 + i) for i in range(5))
            assert response.trailers == []
        assert {m.state for m in pool.metrics.connections} == {ConnectionState.IDLE}


async def test_stale_retry_happens_once_on_a_new_connection(
    server_tls_config: ServerTLSConfig,
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(networking) as pool,
    ):
        async with anyio.create_task_group() as group:
            for _ in range(2):
                group.start_soon(_get, pool, server.url("/slow-close"))
        assert server.app.connections == {"tcp": 2}
        await anyio.sleep(0.2)
        # Both idle connections were closed by the server; memory streams
        # cannot tell.  The first fails, the other idle one is dropped with
        # it, and the retry opens a third.
        assert await _get(pool, server.url("/ok")) == b"ok"
        assert server.app.connections == {"tcp": 3}
        assert pool.metrics.total_connections == 1


async def test_a_post_on_a_stale_connection_is_not_sent_again(
    server_tls_config: ServerTLSConfig,
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(networking) as pool,
    ):
        await _get(pool, server.url("/then-close"))
        await anyio.sleep(0.2)
        # Memory streams cannot tell that the idle connection was closed, so
        # the POST fails on it; it may have been applied (RFC 9112 §9.3.1),
        # so the error reaches the caller instead of a second POST.
        request = Request("POST", URL(server.url("/echo")), body=b"once")
        with pytest.raises(NetworkError):
            await pool.handle_request(request)
        assert server.app.connections == {"tcp": 1}
        # A GET in the same spot is sent again on a new connection.
        assert await _get(pool, server.url("/ok")) == b"ok"
        assert server.app.connections == {"tcp": 2}
