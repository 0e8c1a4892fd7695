"""ConnectionPool.lease: a pooled connection for a stream of the caller's own.

The lease takes a connection as a request would (limits, versions, reuse),
books it as a request in the pool's metrics, retries a start function that
failed on a stale pooled HTTP/1.1 connection, and retires or fails it when
asked.  Every test runs on asyncio and Trio, on both socket backends; HTTP/1.1,
HTTP/2 and HTTP/3 where it applies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore_io import ConnectionClosed, PoolTimeout
from hcore_io.client import (
    URL,
    ConnectionPool,
    ConnectionState,
    PooledConnection,
    Request,
    Timeouts,
)
from hcore_io.client import _books as books
from hcore_io.connections import HTTPStream
from hcore_io.networking import EpollNetworking, SystemNetworking

from .client_helpers import client_server, pattern

if TYPE_CHECKING:
    from .client_helpers import TestServer

pytestmark = pytest.mark.anyio

Networking = SystemNetworking | EpollNetworking
#: Pool versions, and whether the URL is https: HTTP/1.1 plain, HTTP/2 by
#: ALPN, HTTP/3 directly.
SETUPS = {"1.1": (("1.1",), False), "2": (("1.1", "2"), True), "3": (("3",), True)}


def _url(server: TestServer, setup: str, path: str) -> str:
    if setup == "3":
        assert server.quic is not None
        return f"https://127.0.0.1:{server.quic[1]}{path}"
    return server.url(path, tls=SETUPS[setup][1], host="127.0.0.1")


def _get(url: str) -> Callable[[PooledConnection], Awaitable[HTTPStream]]:
    """A start function sending ``GET url``; it returns the stream."""

    async def start(leased: PooledConnection) -> HTTPStream:
        head = Request("GET", URL(url)).header_block()
        return await leased.connection.open_stream(head, end_stream=True)

    return start


async def _read(stream: HTTPStream) -> tuple[int, bytes]:
    status, body = 0, b""
    with anyio.fail_after(10):
        # Bounded by the response.
        async for event in stream:
            if isinstance(event, HeadersReceived):
                status = int(dict(event.headers)[b":status"])
                if event.end_stream:
                    break
            elif isinstance(event, DataReceived):
                body += event.data
                if event.end_stream:
                    break
    return status, body


def _pool(
    networking: Networking, tls: ClientTLSConfig, setup: str, **options: object
) -> ConnectionPool:
    return ConnectionPool(
        networking,
        tls_config=tls,
        http_versions=SETUPS[setup][0],
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("setup", SETUPS)
async def test_lease_runs_a_stream_and_books_it(
    setup: str,
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config, quic=setup == "3") as server,
        _pool(networking, client_tls_config, setup) as pool,
    ):
        url = _url(server, setup, "/bytes/5000")
        for round_ in range(2):
            async with pool.lease(url, _get(url)) as (leased, stream):
                assert leased.http_version == setup
                assert leased.reused is (round_ == 1)
                assert stream.connection is leased.connection
                connection = pool.metrics.connections[0]
                assert connection.state is ConnectionState.ACTIVE
                assert await _read(stream) == (200, pattern(5000))
        metrics = pool.metrics
        assert (metrics.requests, metrics.created, metrics.closed) == (2, 1, 0)
        [connection] = metrics.connections
        assert connection.http_version == setup
        assert (connection.requests, connection.completed, connection.errors) == (
            2,
            2,
            0,
        )
        assert connection.state is ConnectionState.IDLE
        # A request after the leases reuses the connection too.
        response = await pool.handle_request(Request("GET", URL(url)))
        assert (await response.aread()) == pattern(5000)
        assert pool.metrics.created == 1 and pool.metrics.requests == 3


@pytest.mark.parametrize("setup", SETUPS)
async def test_fail_and_retire_are_booked(
    setup: str,
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config, quic=setup == "3") as server,
        _pool(networking, client_tls_config, setup) as pool,
    ):
        url = _url(server, setup, "/ok")
        async with pool.lease(url, _get(url)) as (leased, stream):
            assert await _read(stream) == (200, b"ok")
            leased.fail()
            assert leased.failed and not leased.retired
        [connection] = pool.metrics.connections
        assert (connection.completed, connection.errors) == (1, 1)
        assert connection.state is ConnectionState.IDLE
        async with pool.lease(url, _get(url)) as (leased, stream):
            assert leased.reused is False  # the failed lease served nothing
            assert await _read(stream) == (200, b"ok")
            leased.retire()
        metrics = pool.metrics
        assert (metrics.created, metrics.closed, metrics.connections) == (1, 1, [])
        assert leased.connection.has_expired() or setup != "1.1"
        async with pool.lease(url, _get(url)) as (leased, stream):
            assert await _read(stream) == (200, b"ok")
        assert (pool.metrics.created, pool.metrics.requests) == (2, 3)


@pytest.mark.parametrize("setup", ("1.1", "2"))
async def test_errors_in_start_and_block_count_as_failures(
    setup: str,
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async def broken(leased: PooledConnection) -> None:
        raise RuntimeError("start failed (expected by the test)")

    async with (
        client_server(networking, server_tls_config) as server,
        _pool(networking, client_tls_config, setup) as pool,
    ):
        url = _url(server, setup, "/ok")
        with pytest.raises(RuntimeError, match="start failed"):
            async with pool.lease(url, broken):
                raise AssertionError("not reached")
        with pytest.raises(RuntimeError, match="block failed"):
            async with pool.lease(url, _get(url)) as (_, stream):
                assert await _read(stream) == (200, b"ok")
                raise RuntimeError("block failed (expected by the test)")
        [connection] = pool.metrics.connections
        assert (connection.requests, connection.completed, connection.errors) == (
            2,
            2,
            2,
        )
        # Not started by start, nothing spoilt: the connection is reused.
        async with pool.lease(url, _get(url)) as (_, stream):
            assert await _read(stream) == (200, b"ok")
        assert pool.metrics.created == 1 and pool.metrics.requests == 3


async def test_http1_only_lease_on_an_http2_pool(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config) as server,
        ConnectionPool(networking, tls_config=client_tls_config) as pool,
    ):
        url = server.url("/ok", tls=True, host="127.0.0.1")
        response = await pool.handle_request(Request("GET", URL(url)))
        assert response.http_version == "2"
        await response.aread()
        async with pool.lease(url, _get(url), http1_only=True) as (leased, stream):
            assert leased.http_version == "1.1"
            assert await _read(stream) == (200, b"ok")
        # The HTTP/1.1 connection is reused by the next HTTP/1.1 lease.
        async with pool.lease(url, _get(url), http1_only=True) as (leased, stream):
            assert leased.http_version == "1.1" and leased.reused
            assert await _read(stream) == (200, b"ok")
        versions = sorted(c.http_version for c in pool.metrics.connections)
        assert versions == ["1.1", "2"]
        assert (pool.metrics.created, pool.metrics.requests) == (2, 3)


async def test_lease_waits_within_the_pool_limits(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config) as server,
        _pool(networking, client_tls_config, "1.1", max_connections_per_host=1) as pool,
    ):
        url = _url(server, "1.1", "/ok")
        async with pool.lease(url, _get(url)) as (_, stream):
            with pytest.raises(PoolTimeout):
                async with pool.lease(url, _get(url), timeouts=Timeouts(pool=0.2)):
                    raise AssertionError("not reached")
            assert await _read(stream) == (200, b"ok")
        # The timed-out lease never had a connection: one request booked.
        [connection] = pool.metrics.connections
        assert (connection.requests, connection.completed) == (1, 1)
        await pool.aclose()
        with pytest.raises(ConnectionClosed):
            async with pool.lease(url, _get(url)):
                raise AssertionError("not reached")


async def test_lease_retries_a_stale_http1_connection(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bool] = []

    async def start(leased: PooledConnection) -> tuple[int, bytes]:
        calls.append(leased.reused)
        url = _url(server, "1.1", "/ok")
        stream = await leased.connection.open_stream(
            Request("GET", URL(url)).header_block(), end_stream=True
        )
        try:
            first = await stream.receive_event(timeout=10)
            if not isinstance(first, HeadersReceived):
                # The closed connection ends the stream: as ReadError would.
                raise ConnectionClosed(f"stale: {first!r}")
            return await _read_rest(stream, first)
        finally:
            await stream.aclose()

    async with (
        client_server(networking, server_tls_config) as server,
        _pool(networking, client_tls_config, "1.1") as pool,
    ):
        # The server closes the connection after the response; the idle
        # check cannot see it (the race this retry is for).
        monkeypatch.setattr(books, "looks_closed", lambda connection: False)
        url = _url(server, "1.1", "/then-close")
        async with pool.lease(url, _get(url)) as (_, stream):
            assert await _read(stream) == (200, b"ok")
        with anyio.fail_after(10):
            # Bounded by the timeout: the server closes it at once.
            while server.app.open_now:  # noqa: ASYNC110 (the app has no event)
                await anyio.sleep(0.02)
        async with pool.lease(url, start) as (leased, result):
            assert result == (200, b"ok")
            assert not leased.reused
        assert calls == [True, False]
        metrics = pool.metrics
        assert (metrics.requests, metrics.created, metrics.closed) == (2, 2, 1)
        [connection] = metrics.connections
        assert (connection.requests, connection.errors) == (1, 0)


async def _read_rest(stream: HTTPStream, head: HeadersReceived) -> tuple[int, bytes]:
    status = int(dict(head.headers)[b":status"])
    if head.end_stream:
        return status, b""
    body = b""
    # Bounded by the response.
    async for event in stream:
        if isinstance(event, DataReceived):
            body += event.data
            if event.end_stream:
                break
    return status, body
