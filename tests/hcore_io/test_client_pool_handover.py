"""An HTTP/1.1 connection given back goes straight to the oldest waiting task.

When requests wait for a full pool, the connection a finished exchange gives
back is handed over to the first task waiting for its origin (taken on its
behalf), instead of waking every waiting task.  These tests check what that
must keep: waiting tasks are served in order, none is forgotten, a task
cancelled after it was handed a connection gives it back, and the books
settle (every connection idle, none leaked) afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.client import URL, ConnectionPool, ConnectionState, Request

from .client_helpers import ClientApp, client_server
from .conftest import SocketBackend

pytestmark = pytest.mark.anyio

# A request that hangs fails the test instead of the run.
BOUND = 10.0


@asynccontextmanager
async def _pool(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    max_connections: int,
) -> AsyncIterator[tuple[ConnectionPool, str, ClientApp]]:
    async with client_server(networking, server_tls_config) as server:
        base = server.url("", tls=True, host="127.0.0.1")
        async with ConnectionPool(
            networking,
            tls_config=client_tls_config,
            http_versions=("1.1",),
            max_connections=max_connections,
            max_connections_per_host=max_connections,
            max_requests_per_connection=10_000,
        ) as pool:
            yield pool, base, server.app


async def _ok(pool: ConnectionPool, base: str) -> None:
    response = await pool.handle_request(Request("GET", URL(base + "/ok")))
    assert response.status == 200
    assert await response.stream.aread() == b"ok"


def _assert_settled(pool: ConnectionPool) -> None:
    """Every connection of the pool is idle and none is taken."""
    for entry in pool._entries:
        assert entry.active == 0
        assert entry.opening == 0
        assert entry.metrics.state is ConnectionState.IDLE
    assert not pool._waiters


async def test_waiting_tasks_get_the_connection_in_order(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with _pool(networking, server_tls_config, client_tls_config, 1) as (
        pool,
        base,
        app,
    ):
        # Unfinished (the whole body would give the connection back at
        # once) until the gate opens.
        held = await pool.handle_request(Request("GET", URL(base + "/gated")))
        served: list[int] = []

        async def waiter(index: int) -> None:
            await _ok(pool, base)
            served.append(index)

        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as group:
                for index in range(4):
                    group.start_soon(waiter, index)
                    # Each is queued before the next one starts.
                    await anyio.wait_all_tasks_blocked()
                assert len(pool._waiters) == 4
                app.gate.set()
                assert await held.stream.aread() == b"ok"
        assert served == [0, 1, 2, 3]
        assert pool.metrics.created == 1
        _assert_settled(pool)


async def test_a_task_cancelled_after_the_hand_over_gives_the_connection_back(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with _pool(networking, server_tls_config, client_tls_config, 1) as (
        pool,
        base,
        app,
    ):
        # Unfinished (the whole body would give the connection back at
        # once) until the gate opens.
        held = await pool.handle_request(Request("GET", URL(base + "/gated")))
        first = anyio.CancelScope()
        outcome: list[str] = []

        async def cancelled() -> None:
            with first:
                await _ok(pool, base)
                outcome.append("first served")
            if first.cancelled_caught:
                outcome.append("first cancelled")

        async def second() -> None:
            await _ok(pool, base)
            outcome.append("second served")

        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as group:
                group.start_soon(cancelled)
                await anyio.wait_all_tasks_blocked()
                group.start_soon(second)
                await anyio.wait_all_tasks_blocked()
                # Cancelled (it runs only later), then handed the connection
                # given back: it must pass it on, unused.
                first.cancel()
                app.gate.set()
                assert await held.stream.aread() == b"ok"
        assert outcome == ["first cancelled", "second served"]
        await _ok(pool, base)
        assert pool.metrics.created == 1
        _assert_settled(pool)


async def test_many_tasks_share_a_few_connections(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with _pool(networking, server_tls_config, client_tls_config, 2) as (
        pool,
        base,
        _,
    ):
        done = 0

        async def worker() -> None:
            nonlocal done
            # Bounded: four requests.
            for _ in range(4):
                await _ok(pool, base)
                done += 1

        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as group:
                for _ in range(24):
                    group.start_soon(worker)
        assert done == 96
        assert pool.metrics.created == 2
        assert pool.metrics.requests == 96
        _assert_settled(pool)


async def test_a_pool_waiter_woken_early_late_or_twice() -> None:
    """A wake before the wait ends it at once; a late or second one does nothing."""
    from hcore_io.client._clock import running_loop
    from hcore_io.client._entry import PoolWaiter

    origin = URL("http://127.0.0.1/").origin
    early = PoolWaiter(origin, False, running_loop())
    early.wake()
    early.wake()
    with anyio.fail_after(BOUND):
        await early.wait()

    cancelled = PoolWaiter(origin, False, running_loop())
    with anyio.move_on_after(0.01) as scope:
        await cancelled.wait()
    assert scope.cancelled_caught
    cancelled.wake()

    woken = PoolWaiter(origin, False, running_loop())

    async def wait() -> None:
        await woken.wait()

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        woken.wake()
    woken.wake()


async def test_the_loop_found_last_is_asked_before_looking_again() -> None:
    """running_loop(known) keeps a loop running this task, replaces another."""
    import asyncio

    from hcore_io.client._clock import running_loop

    loop = running_loop()
    other = asyncio.new_event_loop()
    try:
        # On Trio there is no asyncio loop, whatever was known.
        assert running_loop(other) is loop
    finally:
        other.close()
    if loop is not None:
        assert running_loop(loop) is loop
