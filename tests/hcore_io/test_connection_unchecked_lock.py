"""The write lock taken without a check of its own (``WriteLock.take_unchecked``).

The connection's first write raises a pending cancellation before it writes
anything, and the bytes then stay queued, as the lock's check left them:
on a stream that reports what an interrupted send left unsent (epoll's) and
on one that cannot (AnyIO's).  No sockets; asyncio and Trio.
"""

from __future__ import annotations

import anyio
import pytest

from hcore.protocols.http1 import HTTP1ClientFactory
from hcore_io.connections import HTTPConnection
from hcore_io.connections._tcp_transport import TCPTransport
from hcore_io.connections._waiters import WriteLock

from .connection_helpers import request_headers
from .stream_doubles import RecordingStream, ReportingRecordingStream

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("reports", [True, False], ids=["reports", "anyio"])
async def test_a_cancelled_first_write_leaves_its_bytes_queued(reports: bool) -> None:
    stream = ReportingRecordingStream() if reports else RecordingStream()
    protocol = HTTP1ClientFactory()()
    protocol.submit_headers(1, request_headers("GET", "/"), end_stream=True)
    transport = TCPTransport(protocol, stream)
    assert transport.collect()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await transport.send_backlog()
    assert scope.cancelled_caught
    assert stream.sent == []
    assert transport.interrupted_error is None
    # Still queued, and written once by the next send.
    assert transport.collect()
    await transport.send_backlog()
    assert len(stream.sent) == 1
    assert stream.sent[0].startswith(b"GET / HTTP/1.1\r\n")
    assert not transport.collect()


@pytest.mark.parametrize("reports", [True, False], ids=["reports", "anyio"])
async def test_a_cancelled_sender_leaves_the_lock_free_and_the_bytes_queued(
    reports: bool,
) -> None:
    stream = ReportingRecordingStream() if reports else RecordingStream()
    connection = HTTPConnection(HTTP1ClientFactory()(), stream)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await connection.send_headers(1, request_headers("GET", "/"), end_stream=True)
    assert scope.cancelled_caught
    assert stream.sent == []
    assert not connection._write_lock.locked()
    assert not connection.has_expired()
    # The next write takes the queued bytes with it.
    await connection._flush()
    assert len(stream.sent) == 1
    assert stream.sent[0].startswith(b"GET / HTTP/1.1\r\n")


async def test_take_unchecked_takes_only_a_free_lock() -> None:
    lock = WriteLock()
    assert lock.take_unchecked()
    assert lock.locked()
    assert not lock.take_unchecked()
    lock.release()
    assert not lock.locked()
    released = anyio.Event()

    async def waiter() -> None:
        await lock.acquire()
        released.set()
        lock.release()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            assert lock.take_unchecked()
            group.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            assert not released.is_set()
            lock.release()
        assert released.is_set()
    assert not lock.locked()
