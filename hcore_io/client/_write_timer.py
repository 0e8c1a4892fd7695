"""Timed waits of a pool that share one timer on asyncio.

Theory of operation
-------------------
A request with a write timeout opens its stream under a cancel scope that
ends the wait when the timeout passes.  On asyncio, a cancel scope with a
deadline (``anyio.move_on_after``) makes a timer handle when it is entered
and cancels it when it is left; the cancelled handle stays in the loop's
timer heap until the heap is cleaned.  Opening a stream almost never waits
(the head goes out in one write), so a busy pool made and dropped a timer
per request, for nothing: that cost more than the rest of the pool's
bookkeeping of the request.

:class:`ScopeTimer` gives each timed wait a cancel scope without a
deadline and books the deadline itself; one loop timer serves them all.
The timer is set for a new deadline only if it is not set, or set for
later; when it fires, it cancels the scopes whose deadline passed and is
set again for the earliest one left (none left: it stays unset until the
next wait).  A wait that ends in time only leaves the books.  A scope is
thus cancelled when its deadline passes, as its own deadline would cancel
it.  On Trio, whose deadlines cost no timer handle, a scope gets its own
deadline; so does one whose deadline is already past.

What the scope encloses must not read the deadline, which it does not
have: a connection bounds a write interrupted by a cancellation by the
task's effective deadline when its stream cannot tell what the write left
unsent (AnyIO's streams, TLS).  Only a connection whose stream can tell
(epoll's plain TCP, which finishes the write within a grace of its own)
is timed here (``shared``); the others get a scope with its deadline.
"""

from __future__ import annotations

import asyncio
import math

import anyio

__all__ = ("ScopeTimer",)


class ScopeTimer:
    """Cancel scopes with deadlines, on one timer per event loop (see above)."""

    __slots__ = ("_deadlines", "_handle", "_loop")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        # The scopes handed out and not given back, with their deadlines.
        self._deadlines: dict[anyio.CancelScope, float] = {}

    def scope(self, timeout: float, *, shared: bool) -> anyio.CancelScope:
        """A cancel scope that is cancelled ``timeout`` seconds from now.

        Give it back with :meth:`done` as soon as it is left.

        :param timeout: seconds.
        :param shared: whether the shared timer may cancel it (see above);
            if not, it gets its own deadline.
        """
        if not shared:
            return anyio.move_on_after(timeout)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Trio: the scope's own deadline costs no timer handle.
            return anyio.move_on_after(timeout)
        if loop is not self._loop:
            # A pool used from another loop (its connections were on the
            # old one): the old loop's books mean nothing here.
            if self._handle is not None:
                self._handle.cancel()
            self._loop, self._handle = loop, None
            self._deadlines.clear()
        if timeout <= 0:
            return anyio.move_on_after(timeout)
        deadline = loop.time() + timeout
        scope = anyio.CancelScope()
        self._deadlines[scope] = deadline
        handle = self._handle
        if handle is None or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._handle = loop.call_at(deadline, self._fire)
        return scope

    def done(self, scope: anyio.CancelScope) -> None:
        """The scope was left: its deadline no longer matters."""
        self._deadlines.pop(scope, None)

    def _fire(self) -> None:
        self._handle = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        earliest = math.inf
        # Bounded by the waits in progress.
        for scope, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[scope]
                scope.cancel()
            else:
                earliest = min(earliest, deadline)
        if earliest < math.inf:
            self._handle = loop.call_at(earliest, self._fire)
