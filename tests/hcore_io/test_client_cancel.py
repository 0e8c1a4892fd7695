"""Requests cancelled mid-flight leave their client (pool) usable.

A request's task may be cancelled anywhere: while it waits for a pooled
connection (or for a new one being opened), while it sends a streamed body,
while it awaits the response head, while it reads the body.  Each time the
stream slot (or HTTP/1.1 connection) must go back to the pool and whatever
the cancelled task held of its connection (the reader role, the write lock,
the entry being connected) must pass on, so that the client's next requests
complete.  Run on HTTP/1.1, HTTP/2 and HTTP/3, with cancel delays that sweep
each of those points.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest

from hcore import ClientTLSConfig, HCoreError, ServerTLSConfig
from hcore_io.client import URL, ConnectionPool, ConnectionState, Request

from .client_helpers import client_server
from .conftest import SocketBackend

pytestmark = pytest.mark.anyio

VERSIONS = pytest.mark.parametrize("version", ["1.1", "2", "3"])
# Seconds after which a cancelled request is cancelled: from at once (while
# it waits for the pool or connects) to well into its exchange.
DELAYS = (0.0, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032)
# A later request must complete within this (a hang fails the test).
BOUND = 10.0
_PIECE = b"u" * (256 * 1024)


@asynccontextmanager
async def _setup(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    *,
    max_connections: int = 4,
    max_concurrent_streams: int = 100,
) -> AsyncIterator[tuple[Callable[[], ConnectionPool], str]]:
    """Serve the client app; yield a pool maker and the base URL of ``version``."""
    async with client_server(
        networking,
        server_tls_config,
        quic=version == "3",
        max_concurrent_streams=max_concurrent_streams,
    ) as server:
        if version == "3":
            assert server.quic is not None
            base = f"https://127.0.0.1:{server.quic[1]}"
        else:
            base = server.url("", tls=True, host="127.0.0.1")

        def make() -> ConnectionPool:
            return ConnectionPool(
                networking,
                tls_config=client_tls_config,
                http_versions=(version,),
                max_connections=max_connections,
                max_connections_per_host=max_connections,
                max_requests_per_connection=10_000,
            )

        yield make, base


class _Upload:
    """A streamed body of 32 MiB: more than windows and socket buffers hold
    while nobody reads the echo.  (Not an async generator: one abandoned
    half-way would warn when collected, on Trio.)"""

    def __init__(self) -> None:
        self._left = 128

    def __aiter__(self) -> _Upload:
        return self

    async def __anext__(self) -> bytes:
        if not self._left:
            raise StopAsyncIteration
        self._left -= 1
        await anyio.lowlevel.checkpoint()
        return _PIECE


def _kinds(base: str) -> list[Callable[[ConnectionPool], Awaitable[None]]]:
    """Requests to cancel, each stuck at another point of its exchange."""

    async def head(pool: ConnectionPool) -> None:
        # The server answers after 5 s: cancelled awaiting the head.
        await pool.handle_request(Request("GET", URL(base + "/slow?delay=5")))

    async def body(pool: ConnectionPool) -> None:
        # The head at once, the body never: cancelled reading the body.
        response = await pool.handle_request(Request("GET", URL(base + "/slow-body")))
        try:
            await response.aread()
        finally:
            await response.aclose()

    async def big(pool: ConnectionPool) -> None:
        # Cancelled somewhere in a 4 MiB body.
        response = await pool.handle_request(
            Request("GET", URL(base + "/bytes/4194304"))
        )
        try:
            await response.aread()
        finally:
            await response.aclose()

    async def upload(pool: ConnectionPool) -> None:
        # The server echoes it while the client reads nothing back, so
        # flow control (or TCP) soon blocks the upload: cancelled sending it.
        await pool.handle_request(Request("POST", URL(base + "/echo"), body=_Upload()))

    return [head, body, big, upload]


async def _cancelled(
    pool: ConnectionPool,
    run: Callable[[ConnectionPool], Awaitable[None]],
    delay: float,
) -> None:
    with anyio.move_on_after(delay):
        try:
            await run(pool)
        except HCoreError:
            # A stream given up on HTTP/1.1 closes the connection, which a
            # request sharing it may see; only hangs matter here.
            pass


async def _ok(pool: ConnectionPool, base: str) -> None:
    with anyio.fail_after(BOUND):
        response = await pool.handle_request(Request("GET", URL(base + "/ok")))
        assert response.status == 200
        assert await response.aread() == b"ok"


async def _ok_or_failed(pool: ConnectionPool, base: str) -> None:
    with anyio.fail_after(BOUND):
        try:
            response = await pool.handle_request(Request("GET", URL(base + "/ok")))
            assert await response.aread() == b"ok"
        except HCoreError:
            pass


def _assert_settled(pool: ConnectionPool) -> None:
    """No stream (or connection being opened) is still booked as in use."""
    states = {metrics.state for metrics in pool.metrics.connections}
    assert states <= {ConnectionState.IDLE, ConnectionState.CLOSED}, states
    for metrics in pool.metrics.connections:
        assert metrics.completed == metrics.requests, metrics


@VERSIONS
async def test_cancelled_while_connecting_or_waiting_for_the_connection(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    # A new pool each round: the first requests open its connection (others
    # wait for it, on HTTP/2 and HTTP/3) and are cancelled meanwhile.
    async with _setup(version, networking, server_tls_config, client_tls_config) as (
        make,
        base,
    ):
        for delay in DELAYS:
            async with make() as pool:
                async with anyio.create_task_group() as group:
                    for index in range(4):
                        run = _kinds(base)[index]
                        group.start_soon(_cancelled, pool, run, delay * (index + 1))
                # Later requests of the same client complete.
                async with anyio.create_task_group() as group:
                    for _ in range(3):
                        group.start_soon(_ok, pool, base)
                _assert_settled(pool)


@VERSIONS
async def test_cancelled_mid_exchange_many_times(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        _setup(version, networking, server_tls_config, client_tls_config) as (
            make,
            base,
        ),
        make() as pool,
    ):
        await _ok(pool, base)
        kinds = _kinds(base)
        # Bounded: every delay, every kind, a few rounds.
        for round_ in range(3):
            for delay in DELAYS:
                async with anyio.create_task_group() as group:
                    for index, run in enumerate(kinds):
                        spread = delay * (1 + (index + round_) % 3)
                        group.start_soon(_cancelled, pool, run, spread)
                    # An uncancelled request shares the connection meanwhile;
                    # a cancelled write breaks a TCP connection (its stream
                    # is left corrupt), which this one may see: it must end
                    # in time, one way or the other.
                    group.start_soon(_ok_or_failed, pool, base)
                await _ok(pool, base)
        _assert_settled(pool)


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_cancelled_while_waiting_for_a_free_connection(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    # One connection, one stream (HTTP/2: the server's limit): requests
    # beyond the held one wait for the pool, and are cancelled there.
    async with (
        _setup(
            version,
            networking,
            server_tls_config,
            client_tls_config,
            max_connections=1,
            max_concurrent_streams=1,
        ) as (make, base),
        make() as pool,
    ):
        await _ok(pool, base)
        # Bounded: every delay.
        for delay in DELAYS:
            held = await pool.handle_request(Request("GET", URL(base + "/slow-body")))
            async with anyio.create_task_group() as group:
                for index in range(3):
                    group.start_soon(
                        _cancelled, pool, _kinds(base)[index], delay + 0.001 * index
                    )
            await held.aclose()
            await _ok(pool, base)
        _assert_settled(pool)
