"""HTTP/2 and HTTP/3 streams run in reused worker tasks, each in its own context.

A connection hands each stream to an idle worker and starts one only when
all are busy (hcore_io.server._stream_workers).  What a stream's task did
still holds: streams in flight together run concurrently, and each request
sees a fresh copy of the connection's context.  (The keep-alive and shutdown
behaviour is test_server_limits' and test_server_shutdown's.)
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Generator
from typing import cast

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskGroup

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.connections import HTTPConnection, HTTPStream
from hcore_io.server import Receive, Scope, Send
from hcore_io.server._serving import ConnectionState
from hcore_io.server._stream_workers import StreamWorkers, _InContext

from .conftest import SocketBackend
from .server_helpers import fetch, running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("_SEEN", default="unset")
_MULTIPLEXED = ("h2c", "2", "3")


async def _context_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    before = _SEEN.get()
    _SEEN.set(str(scope["path"]))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": before.encode()})


@pytest.mark.parametrize("version", _MULTIPLEXED)
async def test_each_request_gets_a_fresh_context(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        _context_app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            # One after the other: the same worker runs them.
            bodies = [(await fetch(connection, "GET", f"/{n}")).body for n in range(4)]
    assert bodies == [b"unset"] * 4


@pytest.mark.parametrize("version", _MULTIPLEXED)
async def test_streams_in_flight_together_run_concurrently(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    # Each request waits until all of a round's requests arrived: the
    # connection needs as many workers as streams in flight, round after
    # round (the second round finds them idle).
    rounds = 3
    per_round = 6
    arrived = [0] * rounds
    everyone = [anyio.Event() for _ in range(rounds)]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        index = int(str(scope["path"]).strip("/"))
        arrived[index] += 1
        if arrived[index] == per_round:
            everyone[index].set()
        await everyone[index].wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % index})

    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            for index in range(rounds):
                bodies: list[bytes] = []

                async def one(
                    conn: HTTPConnection, path: str, into: list[bytes]
                ) -> None:
                    into.append((await fetch(conn, "GET", path)).body)

                async with anyio.create_task_group() as group:
                    for _ in range(per_round):
                        group.start_soon(one, connection, f"/{index}", bodies)
                assert bodies == [b"%d" % index] * per_round


class _Counting:
    """A task group that counts the tasks started in it."""

    def __init__(self, group: TaskGroup) -> None:
        self.group = group
        self.started = 0

    def start_soon(self, *args: object) -> None:
        self.started += 1
        self.group.start_soon(*args)  # type: ignore[arg-type]


class _Connection:
    http_version = "2"


def _state() -> ConnectionState:
    """The state of an HTTP/2 connection with no stream yet."""
    return ConnectionState(cast(HTTPConnection, _Connection()))


def _hand(workers: StreamWorkers, state: ConnectionState, number: int) -> None:
    """Hand stream ``number`` to the workers, counted active as a connection does."""
    state.active += 1
    workers.run(cast(HTTPStream, number))


async def _one_idle(workers: StreamWorkers, state: ConnectionState) -> None:
    """Run stream 0 and let its worker go idle."""
    _hand(workers, state, 0)
    await anyio.sleep(0.01)
    assert len(workers._idle) == 1


async def test_a_worker_takes_the_next_stream_and_surplus_workers_end() -> None:
    ran: list[int] = []
    release = anyio.Event()

    async def run_stream(stream: HTTPStream) -> None:
        number = cast(int, stream)
        if number >= 10:
            await release.wait()
        ran.append(number)

    state = _state()
    async with anyio.create_task_group() as group:
        counting = _Counting(group)
        workers = StreamWorkers(
            cast(TaskGroup, counting), state, run_stream, 5.0, max_idle=2
        )
        # One after the other: one worker for all.
        for number in range(3):
            _hand(workers, state, number)
            await anyio.sleep(0.01)
        assert ran == [0, 1, 2]
        assert counting.started == 1
        assert state.active == 0
        # Four at once: the idle one and three more; two stay idle after.
        for number in range(10, 14):
            _hand(workers, state, number)
        await anyio.sleep(0.01)
        assert counting.started == 4
        release.set()
        await anyio.sleep(0.01)
        assert sorted(ran[3:]) == [10, 11, 12, 13]
        assert state.active == 0
        assert len(workers._idle) == 2
        workers.close()
    # Every worker ended (the task group exited).
    assert workers._idle == []


async def test_streams_in_flight_together_each_get_a_worker() -> None:
    waiting: list[int] = []
    everyone = anyio.Event()

    async def run_stream(stream: HTTPStream) -> None:
        waiting.append(cast(int, stream))
        if len(waiting) == 3:
            everyone.set()
        await everyone.wait()

    state = _state()
    async with anyio.create_task_group() as group:
        counting = _Counting(group)
        workers = StreamWorkers(
            cast(TaskGroup, counting), state, run_stream, 5.0, max_idle=4
        )
        for number in range(3):
            _hand(workers, state, number)
        assert counting.started == 3
        with anyio.fail_after(5):
            await everyone.wait()
        # (In the order the event loop starts tasks: Trio's is its own.)
        assert sorted(waiting) == [0, 1, 2]
        workers.close()


async def test_streams_handed_over_meet_a_cancellation_as_new_tasks_would() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def run_stream(stream: HTTPStream) -> None:
        started.append(cast(int, stream))
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(cast(int, stream))
            raise

    state = _state()
    async with anyio.create_task_group() as group:
        workers = StreamWorkers(group, state, run_stream, 5.0, max_idle=4)
        for number in range(3):
            _hand(workers, state, number)
        group.cancel_scope.cancel()
    assert sorted(started) == sorted(cancelled) == [0, 1, 2]
    assert state.active == 0


async def test_a_stream_handed_to_an_idle_worker_as_it_is_cancelled_runs() -> None:
    started: list[int] = []

    async def run_stream(stream: HTTPStream) -> None:
        started.append(cast(int, stream))
        if cast(int, stream) == 0:
            await anyio.lowlevel.checkpoint()
        # (Stream 1 ends without a checkpoint: its worker then raises the
        # cancellation itself.)

    state = _state()
    async with anyio.create_task_group() as group:
        workers = StreamWorkers(group, state, run_stream, 5.0, max_idle=4)
        await _one_idle(workers, state)
        # The idle worker is cancelled and handed a stream at once.
        group.cancel_scope.cancel()
        _hand(workers, state, 1)
    assert started == [0, 1]
    assert state.active == 0


async def test_idle_workers_end_when_cancelled() -> None:
    async def run_stream(stream: HTTPStream) -> None:
        await anyio.lowlevel.checkpoint()

    state = _state()
    async with anyio.create_task_group() as group:
        workers = StreamWorkers(group, state, run_stream, 5.0, max_idle=4)
        await _one_idle(workers, state)
        group.cancel_scope.cancel()
    assert workers._idle == []


@types.coroutine
def _suspend(value: str) -> Generator[str, object, object]:
    return (yield value)


_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("_VAR", default="outer")


async def _steps(log: list[object]) -> None:
    _VAR.set("inner")
    try:
        log.append(await _suspend("first"))
    except ValueError as exc:
        log.append(("caught", str(exc), _VAR.get()))
        log.append(await _suspend("second"))
    finally:
        log.append(("finally", _VAR.get()))


def test_in_context_passes_steps_through_in_its_context() -> None:
    # Driven by hand as an event loop would: send, throw, close.
    log: list[object] = []
    context = contextvars.copy_context()
    steps = _InContext(_steps(log), context).__await__()
    assert steps.send(None) == "first"
    assert steps.throw(ValueError("boom")) == "second"
    with pytest.raises(StopIteration):
        steps.send("resumed")
    assert log == [("caught", "boom", "inner"), "resumed", ("finally", "inner")]
    assert _VAR.get() == "outer" and context[_VAR] == "inner"
    # Closed while it waits (a task dropped): the coroutine is closed too.
    log.clear()
    steps = _InContext(_steps(log), context.copy()).__await__()
    assert steps.send(None) == "first"
    steps.close()
    assert log == [("finally", "inner")]


async def test_close_sends_idle_workers_away() -> None:
    ended: list[int] = []

    async def run_stream(stream: HTTPStream) -> None:
        ended.append(cast(int, stream))

    state = _state()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            workers = StreamWorkers(group, state, run_stream, 5.0, max_idle=4)
            await _one_idle(workers, state)
            workers.close()
            # A stream after the close is still run (then its worker ends).
            _hand(workers, state, 1)
        # The task group ended on its own: no worker waits any more.
    assert ended == [0, 1]
    assert state.active == 0
