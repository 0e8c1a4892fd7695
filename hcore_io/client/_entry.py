"""The pool's record of one connection, the idle-socket check, a waiting task."""

from __future__ import annotations

import select
import socket
from asyncio import AbstractEventLoop, Future
from collections.abc import Awaitable
from typing import Any

import anyio
from anyio.abc import SocketAttribute

from hcore_io.client._metrics import ConnectionMetrics
from hcore_io.client._models import Origin
from hcore_io.connections import HTTPConnection

__all__ = ("PoolEntry", "PoolWaiter", "looks_closed")

# PoolEntry.raw_socket before it was looked up.
_UNKNOWN: Any = object()


def looks_closed(entry: PoolEntry) -> bool:
    """Whether an idle HTTP/1.1 connection's socket became readable.

    Idle, the server has nothing to say: readable means it closed (EOF) or
    broke the protocol.  Streams with no socket (memory) cannot tell.  The
    socket is looked up once per connection (through the stream wrappers'
    attributes, which costs more than the check itself).
    """
    sock = entry.raw_socket
    if sock is _UNKNOWN:
        connection = entry.connection
        assert connection is not None
        sock = entry.raw_socket = connection.extra(SocketAttribute.raw_socket, None)
    if sock is None:
        return False
    try:
        if sock.fileno() < 0:
            return True
        poller = entry.idle_poller
        if poller is None:
            # Made once per connection: the socket's descriptor is its for
            # life (a closed socket says so above before it is reused).
            poller = entry.idle_poller = select.poll()
            poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class PoolEntry:
    """One connection of a pool, with its books (used by the pool only)."""

    def __init__(
        self,
        origin: Origin,
        *,
        quic: bool,
        port: int,
        via_alt_svc: bool,
        may_multiplex: bool,
        now: float,
        http1_only: bool = False,
    ) -> None:
        self.origin = origin
        self.quic = quic
        self.port = port
        self.via_alt_svc = via_alt_svc
        self.may_multiplex = may_multiplex
        #: Opened offering HTTP/1.1 alone (for a lease that asked for it).
        self.http1_only = http1_only
        self.metrics = ConnectionMetrics(str(origin))
        self.connection: HTTPConnection | None = None
        #: ``connection.multiplexed``, read once it is open (a property
        #: chain the pool would otherwise ask several times a request).
        self.multiplexed = False
        #: The connection's socket (``None`` if it has none), once looked up.
        self.raw_socket: socket.socket | None = _UNKNOWN
        #: A poll object with ``raw_socket`` registered, once made.
        self.idle_poller: select.poll | None = None
        #: Whether its stream tells what a cancelled send left unsent (the
        #: connection then finishes such a write within a grace of its own).
        self.reports_unsent = False
        #: Set once connecting ended, either way.
        self.connected = anyio.Event()
        #: Set when the server's first bytes arrive.
        self.received = anyio.Event()
        self.active = 0
        self.opening = 0
        self.idle_since = now
        #: Requests whose response ended on this connection.
        self.served = 0

    def expired(self, now: float, max_requests: int, keep_alive: float) -> bool:
        """Whether its connection is spent (idle entries are asked).

        Spent: closed or taking no new streams, its request budget or
        keep-alive time used up, or (HTTP/1.1) not available.
        """
        connection = self.connection
        if connection is None:
            return False
        if connection.has_expired() or self.metrics.requests >= max_requests:
            return True
        if now - self.idle_since > keep_alive:
            return True
        if not self.multiplexed:
            # Whether the server closed it meanwhile is asked only of the
            # connection about to be reused (_pick): a system call each.
            return not connection.is_available()
        return False


class PoolWaiter:
    """A task waiting for a connection of ``origin`` to become usable.

    On asyncio it waits on a bare future of the loop its caller found (see
    ``_clock``): an ``anyio.Event`` would find the running loop's library
    (sniffio, ``current_task``) to be made and the running loop again to be
    waited on, a ``getpid`` system call each, for every task that waits.
    Elsewhere (Trio) it is an ``anyio.Event``.
    """

    __slots__ = ("_event", "_future", "avoid_quic", "entry", "origin")

    def __init__(
        self, origin: Origin, avoid_quic: bool, loop: AbstractEventLoop | None
    ) -> None:
        self.origin = origin
        #: Whether it takes TCP connections only.
        self.avoid_quic = avoid_quic
        self._future: Future[None] | None = None
        self._event: anyio.Event | None = None
        if loop is None:
            self._event = anyio.Event()
        else:
            self._future = loop.create_future()
        #: An idle HTTP/1.1 connection handed over to it (already taken).
        self.entry: PoolEntry | None = None

    def wake(self) -> None:
        """Let the task go on (again, or after it stopped waiting: no effect).

        :raises RuntimeError: if the waiter's event loop is closed.
        """
        future = self._future
        if future is None:
            assert self._event is not None
            self._event.set()
        elif not future.done():
            future.set_result(None)

    def wait(self) -> Awaitable[None]:
        """Wait until :meth:`wake` (at once if it came first)."""
        if self._future is not None:
            return self._future
        assert self._event is not None
        return self._event.wait()
