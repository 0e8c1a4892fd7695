"""The read's deadline with one timer per connection (``_read_timer``).

Timed waits that follow one another on a connection share its timer on
asyncio; each must still end at its own deadline: a later one after the
timer fired for an earlier one, an earlier one after a later one.  They run
on asyncio and Trio, over both socket backends.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import HeadersReceived
from hcore_io import ReadTimeout
from hcore_io.connections import HTTPConnection
from hcore_io.connections._read_timer import ReadTimer

from .conftest import SocketBackend
from .connection_helpers import fetch, serving

pytestmark = pytest.mark.anyio


async def _answer_one(connection: HTTPConnection, wait: float) -> None:
    stream = await connection.accept_stream(timeout=wait)
    assert stream is not None
    async with stream:
        first = await stream.receive_event()
        assert isinstance(first, HeadersReceived)
        await stream.send_headers_and_data(
            ((b":status", b"200"),), b"ok", end_stream=True
        )


async def test_each_timed_accept_ends_at_its_own_deadline(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    waits: list[tuple[float, float]] = []
    timed_out = anyio.Event()
    done = anyio.Event()

    async def server(connection: HTTPConnection) -> None:
        # Requests answered within a long timeout leave the timer set for
        # the first deadline; the waits after them are each timed anew.
        for _ in range(3):
            await _answer_one(connection, 30.0)
        for timeout in (0.3, 0.1, 0.2):
            started = anyio.current_time()
            with pytest.raises(ReadTimeout):
                await connection.accept_stream(timeout=timeout)
            waits.append((timeout, anyio.current_time() - started))
        timed_out.set()
        await _answer_one(connection, 30.0)
        done.set()

    with anyio.fail_after(20):
        async with serving(
            "1.1",
            server,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            for _ in range(3):
                response = await fetch(served.connection, "GET", "/")
                assert response.status == 200
            await timed_out.wait()
            response = await fetch(served.connection, "GET", "/")
            assert response.body == b"ok"
            await done.wait()
    for timeout, waited in waits:
        # Never early.
        assert waited >= timeout


async def _cancelled_after(timer: ReadTimer, delay: float) -> None:
    """A read with the timer's deadline ``delay`` s away is cancelled, not earlier."""
    started = anyio.current_time()
    with timer.scope(started + delay) as scope:
        await anyio.sleep(10)
    timer.read_done()
    assert scope.cancelled_caught
    assert anyio.current_time() - started >= delay


async def test_read_timer_cancels_only_after_the_deadline() -> None:
    timer = ReadTimer()
    with anyio.fail_after(5):
        # A deadline far off, then a nearer one: the nearer one counts.
        with timer.scope(anyio.current_time() + 60):
            await anyio.lowlevel.checkpoint()
        timer.read_done()
        await _cancelled_after(timer, 0.1)
        # A deadline later than the timer's: the timer fires first and
        # waits again for the later one.
        timer.close()
        with timer.scope(anyio.current_time() + 0.05):
            await anyio.lowlevel.checkpoint()
        timer.read_done()
        await _cancelled_after(timer, 0.2)
        # Already past: cancelled at once.
        with timer.scope(anyio.current_time() - 1) as scope:
            await anyio.sleep(10)
        assert scope.cancelled_caught
        # No deadline: never cancelled by the timer.
        with timer.scope(float("inf")) as scope:
            await anyio.sleep(0.01)
        timer.read_done()
        assert not scope.cancelled_caught
    timer.close()
