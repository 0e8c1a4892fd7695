"""The epoll poller on asyncio (:class:`HostedPoller`), the futures its
waiters sleep on, and :func:`current_poller`, which picks the poller of an
event loop.

Theory of operation: on Trio, the first task that waits polls the epoll for
everyone (the polling :class:`~hcore_io.networking._epoll_poller.Poller`;
its module tells how). On asyncio (and uvloop) the host loop can call back
instead, so there the poller is a :class:`HostedPoller`: the epoll
descriptor is registered once with ``loop.add_reader`` and the loop itself
reads the ready list whenever it reports the descriptor readable, between
the callbacks it runs anyway. No task polls, none is handed the role, and a
waiting task sleeps on a bare future: a wait costs no system call, no
host-loop registration and no timer. (AnyIO has no callback registration of
its own, so this one place speaks to asyncio directly; everything above it
stays on AnyIO.) The same bound on a lost report holds (a timer, armed
while a task waits, reads the ready list every ``_REARM_INTERVAL`` seconds,
as in the polling poller). Trio has no callback registration for
descriptors, so it keeps the polling task.

One poller exists per event loop (an AnyIO ``RunVar``); its descriptors are
closed when the loop is gone and the poller is collected, or by
:meth:`Poller.close`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Mapping
from typing import Any

import anyio
from anyio._backends import _asyncio as _anyio_asyncio
from anyio.lowlevel import RunVar

from hcore_io.networking._epoll_poller import _REARM_INTERVAL, Poller, Registration

#: AnyIO 4's asyncio backend keeps each task's innermost cancel scope here;
#: cancel_pending reads it (and says "maybe" without it).
_task_states: Mapping[asyncio.Task[Any], Any] | None = getattr(
    _anyio_asyncio, "_task_states", None
)
#: What a missing attribute of AnyIO's task state reads as.
_UNKNOWN: Any = object()

__all__ = (
    "HostedPoller",
    "current_poller",
)

_logger = logging.getLogger("hcore_io.networking")


class _Wakeup(asyncio.Future[None]):
    """A bare asyncio future a :class:`HostedPoller` waiter sleeps on."""

    def set(self) -> None:
        if not self.done():
            self.set_result(None)


class _ReadWakeup(asyncio.Future[None]):
    """The future a read waits on, awaited as it is (no coroutine frame).

    It does what :meth:`HostedPoller._wait` does around its wait: it counts
    itself among the waiters while pending, and its read raises
    :exc:`anyio.ClosedResourceError` if the socket was closed.  Made as a
    plain future (no ``__init__`` of its own: one Python call less per
    read), its poller and registration set right after.
    """

    __slots__ = ("_poller", "_registration")

    _poller: HostedPoller
    _registration: Registration

    def set(self) -> None:
        # Called by _wake, which set readable (or closed) and dropped the
        # registration's reference to this waiter.
        if self.done():
            return
        self._poller._waiting -= 1
        if self._registration.closed:
            self.set_exception(anyio.ClosedResourceError())
        else:
            self.set_result(None)

    def cancel(self, msg: object = None) -> bool:
        # Called by the task's cancellation while it waits on this.
        if self.done():
            return False
        self._poller._waiting -= 1
        registration = self._registration
        if registration.read_waiter is self:
            registration.read_waiter = None
        return super().cancel(msg)


class HostedPoller(Poller):
    """The poller on asyncio: the host loop reads the ready list by callback.

    See the theory of operation.  The loop holds the callback (and so the
    poller) until :meth:`close` or until the loop is closed.

    :param loop: the running asyncio event loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        # Weak: the loop's RunVar table holds the poller by a weak key on
        # the loop, so the poller must not keep the loop alive.
        self._loop_ref = weakref.ref(loop)
        # Tasks asleep in _wait, for the re-arm timer to know it is wanted.
        self._waiting = 0
        self._rearm: asyncio.TimerHandle | None = None
        loop.add_reader(self._epoll.fileno(), self._on_readable)

    def close(self) -> None:
        """Leave the host loop, then close the descriptors."""
        loop = self._loop_ref()
        if loop is not None and not loop.is_closed() and not self._epoll.closed:
            loop.remove_reader(self._epoll.fileno())
        if self._rearm is not None:
            self._rearm.cancel()
            self._rearm = None
        super().close()

    def _on_readable(self) -> None:
        self._dispatch()

    def _on_rearm(self) -> None:
        self._rearm = None
        if self._epoll.closed:
            return
        found = self._dispatch()
        if found:
            # Usually events that came in the same loop round; a lost
            # report otherwise.
            _logger.debug("epoll: %d events read on a re-arm", found)
        if self._waiting:
            loop = asyncio.get_running_loop()
            self._rearm = loop.call_later(_REARM_INTERVAL, self._on_rearm)

    def cancel_pending(self) -> bool:
        """Whether AnyIO's ``checkpoint_if_cancelled()`` could raise now.

        The same walk up the task's cancel scopes, with the task found from
        the poller's own loop: AnyIO's own look-up of the current task
        finds the running loop first, a ``getpid()`` system call on Python
        3.11 (7 % of a server's time when every send and receive checked).
        ``True`` (check the usual way) whenever it cannot tell.
        """
        states = _task_states
        if states is None:
            return True
        task = asyncio.current_task(self._loop_ref())
        if task is None:
            return False
        state = states.get(task)
        if state is None:
            return False
        # An attribute AnyIO no longer has reads as "check" (_UNKNOWN).
        scope = getattr(state, "cancel_scope", _UNKNOWN)
        # Bounded by the task's chain of nested scopes.
        while scope is not None:
            if scope is _UNKNOWN or scope.cancel_called:
                return True
            if scope.shield:
                return False
            scope = getattr(scope, "_parent_scope", _UNKNOWN)
        return False

    def wait_readable(self, registration: Registration) -> Awaitable[None]:
        """Wait for a reading edge: the future itself (see :class:`_ReadWakeup`).

        A connection waits here for as long as it is idle: a bare future
        keeps no coroutine frame.
        """
        if registration.read_waiter is not None:
            raise anyio.BusyResourceError("reading from")
        registration.readable = False
        # The poller's own loop (it serves only the running one): no
        # get_running_loop(), which costs a getpid() on Python 3.11.
        loop = self._loop_ref()
        waiter = _ReadWakeup(loop=loop)
        waiter._poller = self
        waiter._registration = registration
        self._waiting += 1
        if registration.closed:
            waiter.set()
            return waiter
        registration.read_waiter = waiter
        if self._rearm is None:
            assert loop is not None
            self._rearm = loop.call_later(_REARM_INTERVAL, self._on_rearm)
        return waiter

    async def _wait(self, registration: Registration, *, writing: bool) -> None:
        loop = asyncio.get_running_loop()
        # Each round is one wake-up: an edge, or a close.
        while not registration.closed and not (
            registration.writable if writing else registration.readable
        ):
            waiter = _Wakeup(loop=loop)
            if writing:
                registration.write_waiter = waiter
            else:
                registration.read_waiter = waiter
            if self._rearm is None:
                self._rearm = loop.call_later(_REARM_INTERVAL, self._on_rearm)
            self._waiting += 1
            try:
                await waiter
            finally:
                self._waiting -= 1
                if writing:
                    if registration.write_waiter is waiter:
                        registration.write_waiter = None
                elif registration.read_waiter is waiter:
                    registration.read_waiter = None
        if registration.closed:
            raise anyio.ClosedResourceError


_current_poller: RunVar[Poller] = RunVar("hcore_io_epoll_poller")


def current_poller() -> Poller:
    """The poller of the running event loop, made on first use.

    A :class:`HostedPoller` on asyncio, a polling :class:`Poller` elsewhere.

    :raises RuntimeError: no event loop is running.
    """
    poller = _current_poller.get(None)
    if poller is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            poller = Poller()
        else:
            poller = HostedPoller(loop)
        _current_poller.set(poller)
    return poller
