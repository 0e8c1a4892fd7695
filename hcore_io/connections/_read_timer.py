"""The deadline of a connection's read, with one timer per connection on asyncio.

Theory of operation
-------------------
A task that waits on a connection with a deadline (a server's keep-alive
timeout, a ``timeout=`` argument) reads under a cancel scope that ends the
read when the deadline passes.  On asyncio, a cancel scope with a deadline
makes a timer handle when it is entered and cancels it when it is left: a
server answering request after request on one connection made and dropped a
timer per request.  :class:`ReadTimer` gives the read a cancel scope without
a deadline instead, and keeps one timer per connection, which a later
deadline does not move: when the timer fires and the current read's
deadline has not come yet, it is set again for that deadline.  Requests that
come quicker than the keep-alive timeout thus cost the timer one wake-up per
timeout, not one timer each.  A deadline earlier than the timer's sets
the timer again, earlier.  A deadline already past is given to the scope
itself, as is any deadline on Trio, whose deadlines cost no timer handle.

The scope is cancelled only once its deadline has passed, as a scope's own
deadline would cancel it; the connection reads the clock after a cancelled
read to tell a deadline from a wake-up, either way.

A connection waits in a read for as long as it is idle, so on asyncio the
scope of a read over TCP (``light=True``) is a :class:`TaskScope` rather
than an AnyIO cancel scope, which costs ~650 bytes (two sets) for as long
as it is entered.  A :class:`TaskScope` cancels its task the way an AnyIO
scope does on asyncio, and the way :func:`asyncio.timeout` undoes it: it
calls ``Task.cancel()`` only while the task waits on a future that is not
done (or after a bare yield), never when the task is about to resume with
a result, which would be lost (it tries again on the next loop turn
instead); on leaving, it takes back its own cancellation (``uncancel``) and
swallows the ``CancelledError`` only if no other cancellation is pending.
What it cannot do is honour a shielded AnyIO scope entered inside it, so it
is used only where nothing inside is shielded: a TCP stream's receive
(epoll's, AnyIO's, TLS over either).  A QUIC read keeps AnyIO's scope.
"""

from __future__ import annotations

import asyncio
import contextvars
import math

import anyio

__all__ = ("ReadScope", "ReadTimer", "TaskScope")


class TaskScope:
    """A cancel scope for one read on asyncio, without AnyIO's bookkeeping.

    Enter it in the task to cancel; :meth:`cancel` from anywhere but that
    task (see the module's doc for what it guarantees and where it may be
    used).
    """

    __slots__ = (
        "_cancelling",
        "_delivered",
        "_entered",
        "_loop",
        "_task",
        "cancel_called",
        "cancelled_caught",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """:param loop: the running loop, if the caller knows it already."""
        # Given, current_task() needs no look-up of the running loop (which
        # costs a getpid() on Python 3.11).
        self._loop = loop
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._entered = False
        # Task.cancel() calls made, to take back on leaving.
        self._delivered = 0
        #: Whether :meth:`cancel` was called.
        self.cancel_called = False
        #: Whether leaving the scope swallowed its cancellation.
        self.cancelled_caught = False

    def __enter__(self) -> TaskScope:
        task = asyncio.current_task(self._loop)
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        self._entered = True
        if self.cancel_called:
            self._deliver()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: object,
    ) -> bool:
        self._entered = False
        task = self._task
        assert task is not None
        self._task = None
        if not self._delivered:
            return False
        pending = task.cancelling()
        # Bounded by the calls this scope made.
        while self._delivered:
            self._delivered -= 1
            pending = task.uncancel()
        if exc_type is asyncio.CancelledError and pending <= self._cancelling:
            # Ours alone (as asyncio.timeout tells its own).
            self.cancelled_caught = True
            return True
        return False

    def cancel(self) -> None:
        """Cancel the task's wait in the scope (at once if it is inside it)."""
        if self.cancel_called:
            return
        self.cancel_called = True
        if self._entered:
            self._deliver()

    def _deliver(self) -> None:
        task = self._task
        if not self._entered or task is None or self._delivered:
            return
        # As AnyIO delivers a cancellation on asyncio: not to a task about
        # to resume with a result (a done future), which would lose it.
        waiter = getattr(task, "_fut_waiter", None)
        if waiter is None or not waiter.done():
            self._delivered += 1
            task.cancel()
        else:
            task.get_loop().call_soon(self._deliver)


# The context the timer's callback runs in: it reads no context variable,
# and a copy of the caller's for each timer costs every connection 64 bytes.
_CONTEXT = contextvars.Context()

#: What :meth:`ReadTimer.scope` gives: a read's cancel scope.
ReadScope = anyio.CancelScope | TaskScope


class ReadTimer:
    """Makes the cancel scope of each read of one connection (see above).

    :param light: whether a read's scope may be a :class:`TaskScope` on
        asyncio (reads over TCP; see above).
    """

    __slots__ = ("_deadline", "_handle", "_hosted", "_light", "_loop", "_scope")

    def __init__(self, *, light: bool = False) -> None:
        self._light = light
        # Whether the loop is asyncio's (None: not known before a timed
        # read), and which.
        self._hosted: bool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._scope: ReadScope | None = None
        self._deadline = math.inf

    def scope(self, deadline: float) -> ReadScope:
        """The cancel scope for a read that must end at ``deadline``.

        :param deadline: on AnyIO's clock; ``math.inf`` for none.
        """
        if self._hosted is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._hosted = False
            else:
                self._hosted = True
        loop = self._loop
        if loop is None:
            # Trio: the scope's own deadline costs no timer handle.
            return anyio.CancelScope(deadline=deadline)
        if deadline == math.inf:
            return TaskScope(loop) if self._light else anyio.CancelScope()
        if loop.time() >= deadline:
            # Already past: the scope cancels the read at once.
            return anyio.CancelScope(deadline=deadline)
        handle = self._handle
        if handle is not None and handle.when() > deadline:
            # Earlier than the timer (a shorter timeout than the last).
            handle.cancel()
            handle = None
        if handle is None:
            self._handle = loop.call_at(deadline, self._fire, context=_CONTEXT)
        scope = self._scope = TaskScope(loop) if self._light else anyio.CancelScope()
        self._deadline = deadline
        return scope

    def now(self) -> float:
        """AnyIO's clock; read from the loop once a timed read found it."""
        loop = self._loop
        return anyio.current_time() if loop is None else loop.time()

    def read_done(self) -> None:
        """The read is over: its scope needs no cancelling any more."""
        self._scope = None

    def close(self) -> None:
        """Drop the timer (the connection is closed)."""
        self._scope = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        scope = self._scope
        if scope is None:
            # No timed read now: the next one sets the timer again.
            return
        loop = self._loop
        assert loop is not None
        if loop.time() >= self._deadline:
            self._scope = None
            scope.cancel()
        else:
            # A later read moved the deadline: wait for that one.
            self._handle = loop.call_at(self._deadline, self._fire, context=_CONTEXT)
