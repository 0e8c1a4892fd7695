"""What keeps connections lean: the write lock, lazy queues, accept timeouts.

The lock and queue tests need no sockets; they run on asyncio and Trio.
The accept timeout runs over both socket backends too, for every HTTP
version.
"""

from __future__ import annotations

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore_io import ReadTimeout
from hcore_io.connections import HTTPConnection
from hcore_io.connections._state import EVENT_COST, EventQueue, StreamState
from hcore_io.connections._waiters import WriteLock

from .conftest import SocketBackend
from .connection_helpers import VERSIONS, fetch, request_headers, serving

pytestmark = pytest.mark.anyio


async def test_write_lock_is_taken_at_once_when_free() -> None:
    lock = WriteLock()
    assert not lock.locked()
    async with lock:
        assert lock.locked()
    assert not lock.locked()


async def test_write_lock_lets_every_waiter_through_after_one_release() -> None:
    lock = WriteLock()
    order: list[int] = []

    async def writer(index: int) -> None:
        async with lock:
            order.append(index)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            async with lock:
                for index in range(50):
                    group.start_soon(writer, index)
                # Every writer runs until it waits for the lock.
                await anyio.wait_all_tasks_blocked()
                assert order == []
            # One release: the waiters that write nothing (here, all of
            # them) pass one after the other without waiting again.
    assert sorted(order) == list(range(50))
    assert not lock.locked()


async def test_write_lock_waiter_cancelled_leaves_the_lock_usable() -> None:
    lock = WriteLock()
    entered = anyio.Event()

    async def waiter(scope_holder: list[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            scope_holder.append(scope)
            async with lock:
                entered.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            scopes: list[anyio.CancelScope] = []
            async with lock:
                group.start_soon(waiter, scopes)
                await anyio.wait_all_tasks_blocked()
                scopes[0].cancel()
                await anyio.wait_all_tasks_blocked()
            assert not lock.locked()
    assert not entered.is_set()
    async with lock:
        assert lock.locked()


async def test_write_lock_raises_for_a_cancelled_task_without_taking_it() -> None:
    lock = WriteLock()
    with anyio.CancelScope() as scope:
        scope.cancel()
        async with lock:
            pytest.fail("a cancelled task took the lock")
    assert scope.cancelled_caught
    assert not lock.locked()


def _holds_a_deque(queue: EventQueue) -> bool:
    return queue._events is not None


def test_event_queue_allocates_nothing_until_an_event_comes() -> None:
    queue = EventQueue(limit=1000)
    assert not queue
    assert len(queue) == 0
    assert not _holds_a_deque(queue)
    with pytest.raises(IndexError):
        queue.take()
    event = DataReceived(stream_id=1, data=b"x" * 900, end_stream=False)
    queue.put(event)
    assert (queue.full, queue.cost) == (True, EVENT_COST + 900)
    assert queue.take() is event
    assert (queue.full, queue.cost) == (False, 0)
    queue.put(HeadersReceived(stream_id=1, headers=(), end_stream=True))
    assert _holds_a_deque(queue)
    queue.clear()
    assert not queue
    assert not _holds_a_deque(queue)


def test_event_queue_says_when_it_becomes_full_and_stops_being_full() -> None:
    queue = EventQueue(limit=2 * EVENT_COST)
    head = HeadersReceived(stream_id=1, headers=())
    assert queue.put(head) is False
    assert queue.put(head) is False  # at the limit: not over it
    assert queue.put(DataReceived(1, b"x")) is True
    assert (queue.full, queue.cost) == (True, 3 * EVENT_COST + 1)
    assert queue.put(head) is False  # full already
    assert queue.pop() == (head, False)
    assert queue.pop() == (head, False)  # one byte over the limit still
    assert queue.pop() == (DataReceived(1, b"x"), True)
    assert (queue.full, queue.cost) == (False, EVENT_COST)
    assert queue.pop() == (head, False)
    assert queue.cost == 0
    with pytest.raises(IndexError):
        queue.pop()


def test_stream_state_has_no_instance_dict() -> None:
    state = StreamState(1, 1000)
    assert not hasattr(state, "__dict__")
    assert not state.finished
    state.local_ended = state.remote_ended = True
    assert state.finished


@pytest.mark.parametrize("version", VERSIONS)
async def test_accept_stream_timeout_leaves_the_connection_usable(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    timed_out = anyio.Event()

    async def patient_server(connection: HTTPConnection) -> None:
        with pytest.raises(ReadTimeout):
            await connection.accept_stream(timeout=0.05)
        timed_out.set()
        stream = await connection.accept_stream(timeout=10)
        assert stream is not None
        async with stream:
            first = await stream.receive_event()
            assert isinstance(first, HeadersReceived)
            await stream.send_headers_and_data(
                ((b":status", b"200"),), b"late", end_stream=True
            )

    with anyio.fail_after(10):
        async with serving(
            version,
            patient_server,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            await timed_out.wait()
            response = await fetch(served.connection, "GET", "/")
            assert response.status == 200
            assert response.body == b"late"


async def test_connection_attributes_outlive_the_stream(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async def answer(connection: HTTPConnection) -> None:
        stream = await connection.accept_stream()
        assert stream is not None
        async with stream:
            await stream.receive_event()
            await stream.send_headers(((b":status", b"204"),), end_stream=True)

    with anyio.fail_after(10):
        async with serving(
            "1.1",
            answer,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            connection = served.connection
            stream = await connection.open_stream(
                request_headers("GET", "/"), end_stream=True
            )
            async with stream:
                await stream.receive_event()
            remote = connection.remote_address
            assert remote is not None
            await connection.aclose()
            # Read when the connection was made: still there once closed.
            assert connection.remote_address == remote
            assert connection.local_address is not None
            getters = connection.extra_attributes
            assert getters
            assert all(callable(getter) for getter in getters.values())
