"""The tasks that run an HTTP/2 or HTTP/3 connection's streams.

Theory of operation
-------------------
Starting a task costs more than a small request's whole exchange does on
HTTP/2 (the task group's bookkeeping, a new coroutine and task, their
teardown).  So a connection keeps the tasks it started: a
:class:`StreamWorkers` hands each accepted stream to a worker task that is
idle (it sets the worker's event), and starts a new worker only when every
worker is busy.  A worker runs one stream at a time; when its stream is
done it does what the end of a stream's task did before (the connection's
count of streams in flight, its keep-alive deadline, the wake-up of a
closing connection) and waits for the next stream.  So there are never
more workers than streams were once in flight together, and at most
``max_idle`` of them wait idle; the rest end.

Workers live in the connection's task group, as the tasks of single streams
did: cancelling the connection cancels them, and a stream's exception
ends the worker and cancels the connection's other work, as before.
:meth:`StreamWorkers.close` (the connection stops accepting) sends idle
workers away and lets busy ones end after their stream.

Each stream runs in a context of its own, a copy of the connection task's
(as a task of its own would): what one request sets in a
:class:`contextvars.ContextVar` is not seen by the next one a worker runs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from hcore_io.connections import HTTPStream

if TYPE_CHECKING:
    from hcore_io.server._serving import ConnectionState

__all__ = ("RunStream", "StreamWorkers")

#: Runs one accepted stream to its end (the stream is its to close).
RunStream = Callable[[HTTPStream], Coroutine[Any, Any, None]]


class _InContext:
    """Awaits a coroutine, running each of its steps in ``context``.

    A task runs its coroutine in the task's context; this runs the inner
    coroutine in another one, passing what it yields to the event loop and
    what the loop sends or throws back, as ``await`` does.
    """

    __slots__ = ("_context", "_coroutine")

    def __init__(
        self, coroutine: Coroutine[Any, Any, None], context: contextvars.Context
    ) -> None:
        self._coroutine = coroutine
        self._context = context

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine = self._coroutine
        run = self._context.run
        send = coroutine.send
        value: Any = None
        error: BaseException | None = None
        # Bounded by the coroutine's steps: it ends or raises.
        while True:
            try:
                if error is None:
                    signal = run(send, value)
                else:
                    signal = run(coroutine.throw, error)
                    error = None
            except StopIteration:
                return
            try:
                value = yield signal
            except GeneratorExit:
                run(coroutine.close)
                raise
            except BaseException as exc:
                error = exc


class _Idle:
    """An idle worker: the event that wakes it and the stream it gets."""

    __slots__ = ("stream", "wake")

    def __init__(self) -> None:
        self.wake = anyio.Event()
        self.stream: HTTPStream | None = None


class StreamWorkers:
    """Runs a connection's streams in reused tasks of its task group.

    :param group: the connection's task group.
    :param state: the connection's bookkeeping (its streams in flight).
    :param run_stream: what each stream gets.
    :param keep_alive_timeout: seconds the connection is kept once no
        stream is in flight.
    :param max_idle: most workers kept waiting for a stream.
    """

    __slots__ = (
        "_closed",
        "_context",
        "_group",
        "_idle",
        "_keep_alive_timeout",
        "_max_idle",
        "_run_stream",
        "_state",
    )

    def __init__(
        self,
        group: TaskGroup,
        state: ConnectionState,
        run_stream: RunStream,
        keep_alive_timeout: float,
        *,
        max_idle: int,
    ) -> None:
        self._group = group
        self._state = state
        self._run_stream = run_stream
        self._keep_alive_timeout = keep_alive_timeout
        self._max_idle = max_idle
        self._idle: list[_Idle] = []
        self._closed = False
        # The connection task's context, which a task started from it
        # would copy: each stream gets a copy of it.
        self._context = contextvars.copy_context()

    def run(self, stream: HTTPStream) -> None:
        """Run a stream (counted in flight already) in an idle or a new worker."""
        idle = self._idle
        if idle:
            worker = idle.pop()
            worker.stream = stream
            worker.wake.set()
        else:
            self._group.start_soon(self._work, stream)

    def close(self) -> None:
        """No more streams come: idle workers end, busy ones after their stream."""
        self._closed = True
        idle, self._idle = self._idle, []
        for worker in idle:
            worker.wake.set()

    async def _work(self, stream: HTTPStream) -> None:
        # Bounded by the streams handed over: it ends once none comes.
        while True:
            await self._run_one(stream)
            if self._closed or len(self._idle) >= self._max_idle:
                return
            worker = _Idle()
            self._idle.append(worker)
            try:
                await worker.wake.wait()
            except BaseException:
                handed = worker.stream
                if handed is None:
                    # (No longer listed if close() woke it as it was cancelled.)
                    self._idle = [other for other in self._idle if other is not worker]
                    raise
                # Handed a stream as the cancellation came: it runs and
                # meets the cancellation, as a task started for it would.
                await self._run_one(handed)
                raise
            handed = worker.stream
            if handed is None:
                return
            stream = handed

    async def _run_one(self, stream: HTTPStream) -> None:
        try:
            await _InContext(self._run_stream(stream), self._context.copy())
        finally:
            state = self._state
            state.active -= 1
            if not state.active:
                state.idle_deadline = anyio.current_time() + self._keep_alive_timeout
                scope = state.accept_scope
                if scope is not None:
                    scope.deadline = state.idle_deadline
                state.wake_if_idle()
