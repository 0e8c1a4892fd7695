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
"""

from __future__ import annotations

import asyncio
import math

import anyio

__all__ = ("ReadTimer",)


class ReadTimer:
    """Makes the cancel scope of each read of one connection (see above)."""

    __slots__ = ("_deadline", "_handle", "_hosted", "_loop", "_scope")

    def __init__(self) -> None:
        # Whether the loop is asyncio's (None: not known before a timed
        # read), and which.
        self._hosted: bool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._scope: anyio.CancelScope | None = None
        self._deadline = math.inf

    def scope(self, deadline: float) -> anyio.CancelScope:
        """The cancel scope for a read that must end at ``deadline``.

        :param deadline: on AnyIO's clock; ``math.inf`` for none.
        """
        if deadline == math.inf:
            return anyio.CancelScope()
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
        if loop.time() >= deadline:
            # Already past: the scope cancels the read at once.
            return anyio.CancelScope(deadline=deadline)
        handle = self._handle
        if handle is not None and handle.when() > deadline:
            # Earlier than the timer (a shorter timeout than the last).
            handle.cancel()
            handle = None
        if handle is None:
            self._handle = loop.call_at(deadline, self._fire)
        scope = self._scope = anyio.CancelScope()
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
            self._handle = loop.call_at(self._deadline, self._fire)
