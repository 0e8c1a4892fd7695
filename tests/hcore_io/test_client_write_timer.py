"""Write timeouts on one shared timer keep their guarantee.

A pool opens each request's stream under a cancel scope from its
:class:`~hcore_io.client._write_timer.ScopeTimer` (one loop timer for all,
instead of a timer handle per request on asyncio):

- a scope is cancelled once its own timeout passed, whatever the order in
  which scopes with other timeouts were handed out;
- a scope left in time is never cancelled later;
- a request whose head cannot be written (a server that never reads)
  fails with ``WriteTimeout`` after the write timeout, and requests that
  finished in time leave nothing that cancels later ones;
- only connections over epoll's plain TCP streams use the shared timer.

Every test runs on asyncio and Trio; the socket ones on both backends.
"""

from __future__ import annotations

import socket

import anyio
import anyio.lowlevel
import pytest

from hcore import ServerTLSConfig
from hcore_io import WriteTimeout
from hcore_io.client import Client, Timeouts
from hcore_io.client._write_timer import ScopeTimer
from hcore_io.networking import EpollNetworking

from .client_helpers import client_server
from .conftest import SocketBackend

pytestmark = pytest.mark.anyio

# A wait that should have been cancelled fails the test within this.
BOUND = 10.0


async def test_scopes_are_cancelled_at_their_own_deadlines() -> None:
    timer = ScopeTimer()
    ended: dict[str, float] = {}
    started = anyio.current_time()

    async def wait(name: str, seconds: float) -> None:
        scope = timer.scope(seconds, shared=True)
        with scope:
            try:
                await anyio.sleep(BOUND)
            finally:
                timer.done(scope)
        assert scope.cancelled_caught
        ended[name] = anyio.current_time() - started

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as group:
            # The later deadline first: the timer is set for it, then moved.
            group.start_soon(wait, "late", 0.4)
            await anyio.sleep(0.01)
            group.start_soon(wait, "early", 0.1)
            await anyio.sleep(0.01)
            group.start_soon(wait, "middle", 0.25)
    assert ended["early"] < ended["middle"] < ended["late"]
    assert ended["early"] >= 0.1
    assert ended["middle"] >= 0.25
    assert ended["late"] >= 0.4


async def test_a_scope_left_in_time_is_not_cancelled_later() -> None:
    timer = ScopeTimer()
    scope = timer.scope(0.05, shared=True)
    with scope:
        try:
            await anyio.lowlevel.checkpoint()
        finally:
            timer.done(scope)
    # Another scope outlives the first one's deadline.
    other = timer.scope(0.3, shared=True)
    with other:
        try:
            await anyio.sleep(0.1)
        finally:
            timer.done(other)
    assert not scope.cancel_called and not scope.cancelled_caught
    assert not other.cancel_called and not other.cancelled_caught


async def test_a_past_deadline_cancels_at_once() -> None:
    timer = ScopeTimer()
    scope = timer.scope(0, shared=True)
    with anyio.fail_after(BOUND), scope:
        try:
            await anyio.sleep(BOUND)
        finally:
            timer.done(scope)
    assert scope.cancelled_caught


async def test_request_head_never_read_times_out(networking: SocketBackend) -> None:
    # A listener that never accepts: the kernel completes the handshake and
    # buffers what its receive buffer holds, then the client's send blocks.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        # More than the socket buffers of both ends take.
        huge = [(b"x-filler", b"a" * (32 << 20))]
        async with Client(
            networking=networking,
            timeouts=Timeouts(connect=BOUND, read=BOUND, write=0.3),
            retries=0,
        ) as client:
            started = anyio.current_time()
            with anyio.fail_after(BOUND), pytest.raises(WriteTimeout):
                await client.get(f"http://127.0.0.1:{port}/", headers=huge)
            assert anyio.current_time() - started >= 0.3


async def test_requests_after_earlier_deadlines_pass_go_through(
    networking: SocketBackend, server_tls_config: ServerTLSConfig
) -> None:
    async with (
        client_server(networking, server_tls_config) as server,
        Client(
            networking=networking, timeouts=Timeouts(read=BOUND, write=0.1)
        ) as client,
    ):
        with anyio.fail_after(BOUND):
            for _ in range(3):
                response = await client.get(server.url("/ok"))
                assert response.content == b"ok"
                # Past the deadline of the request before.
                await anyio.sleep(0.15)
            # Concurrent requests: their scopes share the timer.
            async with anyio.create_task_group() as group:
                for _ in range(8):
                    group.start_soon(client.get, server.url("/ok"))
        # The shared timer serves epoll's plain TCP streams only (see
        # _write_timer): AnyIO's streams read the task's deadline.
        epoll = isinstance(networking, EpollNetworking)
        assert all(e.reports_unsent is epoll for e in client.pool._entries)
