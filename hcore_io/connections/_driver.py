"""The engine of HTTPConnection: one sans-IO protocol driven over one stream.

Theory of operation
-------------------
A connection has no task of its own.  It is driven by the tasks that use it:
a task that waits for something only the network can bring (an event,
flow-control credit, a free stream slot) and finds nobody reading becomes the
*reader* for one read.  It receives once from the transport, feeds the
protocol, takes the protocol's events and routes each to a queue, wakes the
tasks waiting on the queues that got something, gives the reader role up and
writes what the protocol has to send.  If its own wait is not over it reads
again; when it stops waiting it passes the role to one parked task (see
``_waiters``).  So a connection needs no task group, an opener can return it
from a plain ``await``, and nothing is left running after :meth:`aclose`.
The price: nothing is read while nobody waits, so an idle client connection
answers a PING (or runs its QUIC timers) only when it is next used.

Routing (``_routing``).  Events of a stream that has an :class:`HTTPStream`
go to that stream's queue.  On a server that calls :meth:`accept_stream`,
the request headers of a new stream create its :class:`HTTPStream`.
Everything else goes to the connection's own queue, read by
:meth:`receive_event` (the low-level, single-task use); once per-stream use
began, events of streams nobody follows are dropped and only
connection-wide events are kept (the last few).

Bounded memory.  Taking a ``DataReceived`` from the protocol returns its
flow-control credit to the peer, so the connection stops taking events while
any queue holds more than ``max_buffered_data`` (data bytes, plus a fixed
cost per event): the data stays unacknowledged in the protocol and flow
control stops the sender.  One stream whose reader stalls therefore stalls
the events of the others too (they wait, bounded, inside the protocol's
connection window) until it reads, or is closed or cancelled, which drops
its queue.  HTTP/2 and HTTP/3 keep being read meanwhile, so that credit and
control frames still arrive; HTTP/1.1, which has no flow control, is not.

Writes: see ``_writer`` (one lock; its holder writes everything queued;
a write that has begun is finished even if its task is cancelled).

Closing.  The transport is closed when the protocol has expired, nothing is
left to send and no stream is in flight; when it failed; or by
:meth:`aclose`.  Waiting tasks are then told: per-stream receivers get what
was queued for them, then :class:`~hcore_io.ConnectionClosed`;
:meth:`receive_event` gets the protocol's ``ConnectionTerminated``, then
``ConnectionClosed``; :meth:`accept_stream` returns ``None``.
"""

from __future__ import annotations

import logging
import math
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Hashable

import anyio
from anyio.abc import ByteStream, SocketAttribute, UnreliableObjectStream

from hcore import Datagram
from hcore.events import (
    ConnectionTerminated,
)
from hcore.protocols import HTTPOverQUICProtocol, HTTPOverTCPProtocol, HTTPProtocol
from hcore_io._exceptions import ConnectionClosed, NetworkError
from hcore_io.connections._gathering import Gathering
from hcore_io.connections._quic_transport import QUICTransport
from hcore_io.connections._read_timer import ReadScope, ReadTimer
from hcore_io.connections._state import DeadlinePassed, EventQueue, StreamState
from hcore_io.connections._stream import HTTPStream
from hcore_io.connections._tcp_transport import TCPTransport
from hcore_io.connections._transport_base import Transport
from hcore_io.connections._waiters import Waiters, WriteLock

__all__ = ("DEFAULT_MAX_BUFFERED_DATA", "Driver")

logger = logging.getLogger("hcore_io.connections")

#: Default bound of one stream's event queue (see "Bounded memory" above).
DEFAULT_MAX_BUFFERED_DATA = 1 << 20

# How long a connection that is over reads on, for the peer to close first.
_LINGER = 2.0

CONNECTION = "connection"
ACCEPT = "accept"
AVAILABLE = "available"


def stream_key(stream_id: int) -> Hashable:
    """The waiting key of the tasks that wait for a stream's events."""
    return ("stream", stream_id)


def credit_key(stream_id: int) -> Hashable:
    """The waiting key of the tasks that wait for a stream's send credit."""
    return ("credit", stream_id)


class Driver(metaclass=ABCMeta):
    """The state and machinery of a connection; :class:`HTTPConnection` is its face.

    :param protocol: see :class:`HTTPConnection`.
    :param stream: see :class:`HTTPConnection`.
    :param initial_data: see :class:`HTTPConnection`.
    :param max_buffered_data: see :class:`HTTPConnection`.
    :raises TypeError: if the protocol and the stream do not fit together.
    """

    # Made with the first stream accepted on a multiplexed connection (see
    # _gathering); a class default, so that other connections carry nothing.
    _gathering: Gathering | None = None

    def __init__(
        self,
        protocol: HTTPProtocol,
        stream: ByteStream | UnreliableObjectStream[Datagram],
        *,
        initial_data: bytes = b"",
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> None:
        self._transport: Transport
        if isinstance(protocol, HTTPOverTCPProtocol) and isinstance(stream, ByteStream):
            self._transport = TCPTransport(protocol, stream, initial_data)
        elif (
            isinstance(protocol, HTTPOverQUICProtocol)
            and isinstance(stream, UnreliableObjectStream)
            and not initial_data
        ):
            self._transport = QUICTransport(protocol, stream)
        else:
            raise TypeError(
                f"cannot run {type(protocol).__name__} over {type(stream).__name__}"
            )
        self._protocol = protocol
        # Read now: a closed socket cannot tell its address any more.
        self._peer = self._transport.extra(SocketAttribute.remote_address, None)
        self._limit = max_buffered_data
        self._streams: dict[int, StreamState] = {}
        # Finished streams whose last bytes wait for credit (made when the
        # first one does: most connections never have one).
        self._draining: set[StreamState] | None = None
        self._events = EventQueue(max_buffered_data)
        # Streams accepted and not yet taken (a list: rarely more than one).
        self._accepted: list[HTTPStream] = []
        self._stream_mode = False
        self._accepting = False
        # close_gracefully() was called (and the protocol took it).
        self._closing_gracefully = False
        self._full_queues = 0
        self._paused = False
        self._reading = False
        self._read_scope: ReadScope | None = None
        # Light read scopes (see _read_timer) where nothing in the read is
        # shielded: TCP streams.
        self._read_timer = ReadTimer(light=isinstance(self._transport, TCPTransport))
        self._reader_key: Hashable = None
        self._waiters = Waiters()
        self._write_lock = WriteLock()
        self._opened = False
        self._closed = False
        self._input_done = False
        self._transport_closed = False
        self._broken: NetworkError | None = None
        self._terminated: ConnectionTerminated | None = None
        self._terminated_here = False
        self._output_failed = False
        self._linger_deadline: float | None = None

    @property
    def multiplexed(self) -> bool:
        """Whether several streams may be open at once (HTTP/2 and HTTP/3)."""
        return self._protocol.multiplexed

    def has_expired(self) -> bool:
        """Whether the connection is closed or takes no new streams."""
        return self._transport_closed or self._protocol.has_expired()

    @abstractmethod
    def _make_stream(self, state: StreamState) -> HTTPStream:
        """Make the handle of a stream the peer opened."""
        raise NotImplementedError

    def _check_usable(self) -> None:
        if (
            self._closed
            or self._transport_closed
            or self._terminated is not None
            or self._output_failed
            or self._linger_deadline is not None
        ):
            raise self._closed_error()

    # -- driving the protocol ------------------------------------------------------

    async def _wait(
        self, key: Hashable, ready: Callable[[], bool], deadline: float = math.inf
    ) -> None:
        """Return once ``ready()``; read from the transport when nobody else does.

        :param deadline: when to give up (on AnyIO's clock).  The read this
            task does anyway has a cancel scope of its own, which bounds it
            too: a timed wait costs no scope of its own.
        :raises hcore_io.ConnectionClosed: when ``ready()`` can no longer become true.
        :raises DeadlinePassed: when ``deadline`` passed first.
        """
        try:
            while not ready():
                if self._input_done:
                    raise self._closed_error()
                if not self._paused:
                    # A send can release events the protocol already holds
                    # (HTTP/1.1 parses a pipelined request only once the
                    # response before it is complete): route them before
                    # waiting on the network, where nothing more may come.
                    self._dispatch()
                    if ready():
                        break
                if not self._write_lock.held and self._transport.collect():
                    # The peer may be waiting for these bytes (a WINDOW_UPDATE)
                    # before it sends what this task waits for.
                    await self._flush_within(deadline)
                elif not self._reading and (not self._paused or self.multiplexed):
                    # The read itself is here, not in a coroutine of its
                    # own: an idle connection waits in it, and a frame less
                    # is memory each one saves.
                    self._reading = True
                    self._reader_key = key
                    linger = self._linger_deadline
                    if linger is None:
                        linger = math.inf
                    more = False
                    transport = self._transport
                    # Over TCP the stream's receive is awaited here, not
                    # through the transport's: one frame less again.
                    stream = (
                        transport.stream_to_read()
                        if isinstance(transport, TCPTransport)
                        else None
                    )
                    try:
                        with self._read_timer.scope(min(linger, deadline)) as scope:
                            self._read_scope = scope
                            if stream is None:
                                more = await transport.receive()
                            else:
                                assert isinstance(transport, TCPTransport)
                                try:
                                    data = await stream.receive(transport.READ_SIZE)
                                except TCPTransport.RECEIVE_ERRORS as exc:
                                    more = transport.receive_failed(exc)
                                else:
                                    more = transport.received(data)
                    finally:
                        self._read_timer.read_done()
                        self._read_scope = None
                        self._reading = False
                    if scope.cancelled_caught:
                        await self._read_cancelled(linger, deadline)
                        continue
                    # What the read brought is routed here, not in a
                    # coroutine of its own (a frame less on every read).
                    if not more:
                        self._input_done = True
                        if transport.read_error is not None:
                            self._broken = transport.read_error
                    self._dispatch()
                    if transport.collect():
                        if not self._write_lock.held:
                            # Let another task read while this one writes.
                            self._waiters.pass_baton()
                        await self._flush_within(deadline)
                    else:
                        # Nothing to write: the end of _flush, without its call.
                        if self._waiters.parked or self._draining:
                            # (Nobody is reading: _check_waiters' first test.)
                            self._check_waiters()
                        if not self._transport_closed and self._protocol.has_expired():
                            await self._close_if_over()
                    if self._input_done:
                        self._wake_all()
                elif deadline == math.inf:
                    await self._waiters.park(key)
                else:
                    with anyio.CancelScope(deadline=deadline) as scope:
                        await self._waiters.park(key)
                    if scope.cancelled_caught:
                        raise DeadlinePassed
        finally:
            if not self._reading:
                self._waiters.pass_baton()

    async def _read_cancelled(self, linger: float, deadline: float) -> None:
        """After a read of :meth:`_wait` was cancelled: why, and what follows.

        :param linger: the linger deadline the read had (``math.inf``: none).
        :param deadline: the waiting task's.
        :raises DeadlinePassed: if the task's deadline passed.
        """
        now = anyio.current_time()
        if now >= linger:
            # The peer did not close within the linger time.
            await self._close_transport()
        elif now >= deadline:
            raise DeadlinePassed
        # Otherwise interrupted (reads are cancel-safe): the connection
        # closed, or another task routed what this one waits for.

    @abstractmethod
    async def _flush_within(self, deadline: float) -> None:
        """Write what the protocol has, unless a task is writing (see _writer).

        :raises DeadlinePassed: if the write was still blocked at ``deadline``.
        """
        raise NotImplementedError

    def _wake(self, key: Hashable) -> None:
        if self._waiters.parked:
            self._waiters.wake(key)
        if self._read_scope is not None and key == self._reader_key:
            # The reader waits for this too, but is blocked in a read.
            self._read_scope.cancel()

    def _wake_all(self) -> None:
        self._waiters.wake_all()
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def _resume(self, deadline: float = math.inf) -> None:
        """After a queue was read: take more events if they had been held back."""
        if self._paused and not self._full_queues:
            self._dispatch()
            await self._flush_within(deadline)
            if not self._reading:
                self._waiters.pass_baton()

    def _is_over(self) -> bool:
        # _close_if_over's first test, asked after every write without a call.
        return not self._transport_closed and self._protocol.has_expired()

    async def _close_if_over(self) -> None:
        if not self._is_over():
            return
        if self._transport.closes_itself and self._terminated is None:
            # QUIC ends with the protocol's CONNECTION_CLOSE (or idle timeout).
            return
        if self._write_lock.locked() or self._draining:
            return
        pending = self._protocol.pending_data_size
        for state in self._streams.values():
            # In flight: not over, or over but its last bytes wait for credit.
            if not state.finished or (not state.aborted and pending(state.stream_id)):
                return
        if self._input_done or self._transport.closes_itself:
            await self._close_transport()
        elif self._linger_deadline is None:
            # RFC 9112 §9.6: close in stages.  Closing a socket with input
            # still arriving makes it send a reset, which can destroy the
            # end of our last answer in the peer's buffers; so half-close
            # (where the stream can) and read until the peer closes, or the
            # linger time passes.
            self._linger_deadline = anyio.current_time() + _LINGER
            await self._transport.send_eof()
            self._wake_all()

    async def _close_transport(self) -> None:
        if self._transport_closed:
            return
        self._transport_closed = True
        self._input_done = True
        if self._read_scope is not None:
            self._read_scope.cancel()
        self._read_timer.close()
        # The ConnectionTerminated this brings is ours, not the peer's news.
        self._terminated_here = self._terminated is None
        self._transport.connection_lost()
        self._dispatch()
        for state in self._streams.values():
            if not state.finished:
                state.lost = True
        self._draining = None
        self._wake_all()
        await self._transport.aclose()
        logger.debug(
            "closed HTTP/%s connection with %s", self._protocol.http_version, self._peer
        )

    def _check_waiters(self) -> None:
        draining = self._draining
        if not self._waiters.parked and self._read_scope is None and not draining:
            # Nobody to wake, nothing draining: one task reads, then writes.
            return
        protocol = self._protocol
        if draining:
            for drained in list(draining):
                if drained.aborted or not protocol.pending_data_size(drained.stream_id):
                    draining.discard(drained)
        for key in self._waiters.keys():
            if isinstance(key, tuple) and key[0] == "credit":
                state = self._streams.get(key[1])
                if (
                    state is None
                    or state.aborted
                    or not protocol.pending_data_size(key[1])
                ):
                    self._wake(key)
        if protocol.is_available() or self.has_expired():
            self._wake(AVAILABLE)

    @abstractmethod
    def _dispatch(self) -> None:
        """Take events from the protocol and route them (see _routing)."""
        raise NotImplementedError

    def _closed_error(self) -> ConnectionClosed:
        broken = self._broken
        terminated = self._terminated
        if self._closed:
            text = "the connection was closed"
        elif terminated is not None and not (broken and self._terminated_here):
            detail = f": {terminated.message}" if terminated.message else ""
            text = (
                f"the connection was terminated "
                f"(error code {terminated.error_code:#x}{detail})"
            )
            if broken is not None:
                text += f"; {broken}"
        elif broken is not None:
            text = f"the connection failed: {broken}"
        elif self._linger_deadline is not None:
            text = "the connection is over and closing"
        else:
            text = "the peer closed the connection"
        error = ConnectionClosed(text)
        error.__cause__ = self._broken
        return error
