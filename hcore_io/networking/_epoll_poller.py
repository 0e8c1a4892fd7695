"""The epoll of :class:`~hcore_io.networking.EpollNetworking` and the
polling :class:`Poller` (Trio): registrations, edges, whoever waits polls.

Theory of operation: every socket of the backend is registered once, when
it is made, for ``EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`` and stays
registered, unchanged, until it is closed.  Edge-triggered epoll reports a
socket again only when something new happens on it, so nothing has to be
re-armed after a read or a write.  In exchange a stream may wait only once
it knows the socket is drained: an edge seen earlier is not repeated.
:class:`Registration` keeps, per socket, whether an edge came since the
stream last found it drained (``readable``, ``writable``), and the task
waiting for it, if any.  A read that met ``EAGAIN``, or that returned less
than it asked for, drained the socket; so a stream answering one request
per read waits for the next one straight away, without a futile read.
The end of input and errors are the exception: every later read reports
them, and their edge may have been taken before the read that drained the
data ahead of them, so once one was seen (``hung_up``) reads never wait.

On Trio, only the epoll descriptor itself is known to the host event loop,
through :func:`anyio.wait_readable` (asyncio hosts the poller differently:
see :mod:`hcore_io.networking._epoll_hosted`). There is no dispatcher task:
library code has no task group that lives as long as the event loop, and a
task started in the caller's group would keep it from finishing. Instead
*whoever waits polls*: the first task that needs to wait becomes the
poller; it waits for the epoll descriptor, reads the ready list with
``epoll.poll(0)`` and wakes each socket's waiter through an
:class:`anyio.Event`, until its own socket is ready. Other tasks that need
to wait meanwhile sleep on their event. When the poller leaves (its socket
ready, or cancelled) and tasks are still asleep, it wakes one of them, the
*nominee*, which becomes the next poller unless it finds its own socket
ready, in which case it passes the role on the same way. When nobody waits,
nobody polls: events queue up in the kernel until the next wait, and the
streams' first attempts read the data anyway. So a new poller first reads
what is queued (``epoll.poll(0)``) and asks the host loop to wait only if
its own socket is still not ready.

The host loop learns that the epoll descriptor is readable through the
kernel's wake-up of a nested epoll.  Under load, in the full test suite on
Trio, a server on this backend was seen to stall for seconds with events
waiting, every connection at once, until a timeout cancelled the poller
and the next one found them (issue 5); the cause was not pinned down, and
alone the same test never stalls.  So the poller does not rely on that
report alone: it re-arms its wait every :data:`_REARM_INTERVAL` seconds and
reads the ready list itself, which bounds such a stall to the interval.

Closing a socket unregisters it from epoll *before* its descriptor is
closed, and drops its :class:`Registration` from the table: a descriptor
number the kernel hands out again can never be confused with the old
socket, and nothing already queued for the old one is reported again
(``EPOLL_CTL_DEL`` removes it from the ready list).  Its waiters wake and
raise :exc:`anyio.ClosedResourceError`; if the poller itself was waiting
for it, an ``eventfd`` registered in the same epoll wakes the poller up.

One poller exists per event loop (see
:func:`~hcore_io.networking._epoll_hosted.current_poller`); its descriptors
are closed when the loop is gone and the poller is collected, or by
:meth:`Poller.close`.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import weakref
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol

import anyio

__all__ = (
    "Poller",
    "Registration",
    "epoll_available",
)

_logger = logging.getLogger("hcore_io.networking")

# Read from the select module only on Linux, so importing hcore_io works
# elsewhere (EpollNetworking refuses to start there).
_EPOLL = getattr(select, "epoll", None) is not None
# Registered once per socket and never modified.
_SOCKET_EVENTS = (
    select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
    if _EPOLL
    else 0
)
# A hang-up or an error makes both directions "ready": the next system
# call then reports the end of stream or the error.
_READ_EVENTS = (
    select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
    if _EPOLL
    else 0
)
_WRITE_EVENTS = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR if _EPOLL else 0
# The end of input or an error: every later read reports it, so it is no
# edge a drained socket waits for (see Registration.drained).
_HANG_UP_EVENTS = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR if _EPOLL else 0
# Longest the poller waits for the host loop's report before it reads the
# ready list itself (see the theory of operation): bounds a stall caused by
# a lost report, at the cost of an idle wake-up per interval.
_REARM_INTERVAL = 0.25
# recv_into target shared by every socket of a loop: one task runs at a time
# and the bytes are copied out before it yields.
_BUFFER_SIZE = 256 * 1024


class Waiter(Protocol):
    """What a task waiting for an edge sleeps on: an event it is woken by."""

    def set(self) -> None:
        """Wake the waiting task (a second call does nothing)."""


class Registration:
    """One socket's place in the epoll: its readiness flags and waiters.

    :param fd: the socket's descriptor.
    """

    __slots__ = (
        "closed",
        "fd",
        "hung_up",
        "read_waiter",
        "readable",
        "writable",
        "write_waiter",
    )

    def __init__(self, fd: int) -> None:
        self.fd = fd
        #: The socket may hold data: an edge for reading came since a read
        #: last drained it (a short read or ``EAGAIN``); a new socket may
        #: hold data already.
        self.readable = True
        #: The peer's end of input (or an error) was reported: reading never
        #: has to wait again.
        self.hung_up = False
        #: An edge for writing was seen since the last ``EAGAIN``.
        self.writable = False
        #: The socket was unregistered; waiting raises ClosedResourceError.
        self.closed = False
        self.read_waiter: Waiter | None = None
        self.write_waiter: Waiter | None = None

    def drained(self) -> None:
        """Note a read that emptied the socket: the next read waits for an edge.

        Not after a hang-up: its edge may have been taken before that read,
        and the end of input it brings is not followed by another edge.
        """
        if not self.hung_up:
            self.readable = False


def _close_descriptors(epoll: select.epoll, wake_fd: int) -> None:
    epoll.close()
    os.close(wake_fd)


class Poller:
    """An edge-triggered epoll shared by the sockets of one event loop.

    Use :func:`current_poller` rather than making one.
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake_fd, select.EPOLLIN | select.EPOLLET)
        self._finalizer = weakref.finalize(
            self, _close_descriptors, self._epoll, self._wake_fd
        )
        self._registrations: dict[int, Registration] = {}
        self._polling = False
        # What the poller waits for, so closing it can wake the poller.
        self._poller_registration: Registration | None = None
        # Events of sleeping waiters, oldest first (a dict keeps the order).
        self._sleepers: dict[Waiter, None] = {}
        self._nominee: Waiter | None = None
        self.buffer = memoryview(bytearray(_BUFFER_SIZE))

    def close(self) -> None:
        """Close the epoll and wake-up descriptors (the sockets stay open)."""
        self._finalizer()

    def register(self, sock: socket.socket) -> Registration:
        """Add a socket to the epoll, once for its whole life.

        :param sock: a non-blocking socket.
        :raises OSError: the kernel refused (out of memory, closed socket).
        """
        fd = sock.fileno()
        registration = Registration(fd)
        self._epoll.register(fd, _SOCKET_EVENTS)
        self._registrations[fd] = registration
        return registration

    def unregister(self, registration: Registration) -> None:
        """Remove a socket from the epoll; call it *before* closing the socket.

        Its waiters wake up and raise :exc:`anyio.ClosedResourceError`.
        """
        if registration.closed:
            return
        registration.closed = True
        if self._registrations.get(registration.fd) is registration:
            del self._registrations[registration.fd]
            try:
                self._epoll.unregister(registration.fd)
            except (OSError, ValueError):
                # The poller is closed already (its event loop ended).
                pass
        self._wake(registration, read=True, write=True)
        if registration is self._poller_registration:
            os.eventfd_write(self._wake_fd, 1)

    # These two are plain functions returning the wait, so that a task
    # parked on a socket keeps one coroutine frame here, not two (it is
    # memory every idle connection holds).

    def cancel_pending(self) -> bool:
        """Whether a cancellation check could find anything to raise.

        ``True`` here (the polling poller, on Trio): the caller then awaits
        AnyIO's ``checkpoint_if_cancelled()``, which checks.  The asyncio
        poller answers from its own loop, cheaper (see :class:`HostedPoller`).
        """
        return True

    def wait_readable(self, registration: Registration) -> Awaitable[None]:
        """Wait for a reading edge; call it once a read found the socket drained.

        :raises anyio.ClosedResourceError: the socket is (or gets) closed.
        :raises anyio.BusyResourceError: another task waits to read it (at
            once, before anything is awaited).
        """
        if registration.read_waiter is not None:
            raise anyio.BusyResourceError("reading from")
        registration.readable = False
        return self._wait(registration, writing=False)

    def wait_writable(self, registration: Registration) -> Coroutine[Any, Any, None]:
        """Wait for a writing edge; call it right after ``EAGAIN``.

        :raises anyio.ClosedResourceError: the socket is (or gets) closed.
        :raises anyio.BusyResourceError: another task waits to write it (at
            once, before anything is awaited).
        """
        if registration.write_waiter is not None:
            raise anyio.BusyResourceError("writing to")
        registration.writable = False
        return self._wait(registration, writing=True)

    async def _wait(self, registration: Registration, *, writing: bool) -> None:
        try:
            # Each round is one wake-up: an edge, a hand-over or a close.
            while not registration.closed and not (
                registration.writable if writing else registration.readable
            ):
                if self._polling:
                    await self._sleep(registration, writing=writing)
                else:
                    await self._poll(registration, writing=writing)
        finally:
            self._hand_over()
        if registration.closed:
            raise anyio.ClosedResourceError

    async def _sleep(self, registration: Registration, *, writing: bool) -> None:
        event = anyio.Event()
        if writing:
            registration.write_waiter = event
        else:
            registration.read_waiter = event
        self._sleepers[event] = None
        try:
            await event.wait()
        finally:
            self._sleepers.pop(event, None)
            if writing:
                if registration.write_waiter is event:
                    registration.write_waiter = None
            elif registration.read_waiter is event:
                registration.read_waiter = None
            if self._nominee is event:
                self._nominee = None

    async def _poll(self, registration: Registration, *, writing: bool) -> None:
        self._polling = True
        self._poller_registration = registration
        try:
            # Try before waiting: what is queued needs no host-loop round trip.
            self._dispatch()
            # Each round lasts one re-arm interval at most, after which the
            # ready list is read whatever the host loop reported (one timer
            # per interval, not one per wait).
            while not registration.closed and not (
                registration.writable if writing else registration.readable
            ):
                with anyio.move_on_after(_REARM_INTERVAL) as scope:
                    # Each round handles one batch of events from the kernel.
                    while not registration.closed and not (
                        registration.writable if writing else registration.readable
                    ):
                        await anyio.wait_readable(self._epoll.fileno())
                        self._dispatch()
                if scope.cancelled_caught:
                    found = self._dispatch()
                    if found:
                        # Usually events that came in the same loop round as
                        # the deadline; a lost report otherwise.
                        _logger.debug("epoll: %d events read on a re-arm", found)
        finally:
            self._polling = False
            self._poller_registration = None

    def _dispatch(self) -> int:
        # Returns how many events the kernel reported.
        registrations = self._registrations
        sleepers = self._sleepers
        events = self._epoll.poll(0)
        for fd, mask in events:
            registration = registrations.get(fd)
            if registration is None:
                if fd == self._wake_fd:
                    try:
                        os.eventfd_read(self._wake_fd)
                    except BlockingIOError:
                        pass
                continue
            if mask & _HANG_UP_EVENTS:
                registration.hung_up = True
            # _wake's work, written out: this loop runs for every event.
            if mask & _READ_EVENTS:
                registration.readable = True
                waiter = registration.read_waiter
                if waiter is not None:
                    registration.read_waiter = None
                    if sleepers:
                        sleepers.pop(waiter, None)
                    waiter.set()
            if mask & _WRITE_EVENTS:
                registration.writable = True
                waiter = registration.write_waiter
                if waiter is not None:
                    registration.write_waiter = None
                    if sleepers:
                        sleepers.pop(waiter, None)
                    waiter.set()
        return len(events)

    def _wake(self, registration: Registration, *, read: bool, write: bool) -> None:
        if read:
            registration.readable = True
            waiter = registration.read_waiter
            if waiter is not None:
                registration.read_waiter = None
                self._sleepers.pop(waiter, None)
                waiter.set()
        if write:
            registration.writable = True
            waiter = registration.write_waiter
            if waiter is not None:
                registration.write_waiter = None
                self._sleepers.pop(waiter, None)
                waiter.set()

    def _hand_over(self) -> None:
        # Whoever stops waiting makes sure a sleeper will poll next.
        if self._polling or self._nominee is not None or not self._sleepers:
            return
        event = next(iter(self._sleepers))
        del self._sleepers[event]
        self._nominee = event
        event.set()


def epoll_available() -> bool:
    """Whether this system has ``select.epoll`` (Linux)."""
    return _EPOLL
