"""Adapters between a sans-IO protocol and one network stream.

A transport does the network side of a protocol and nothing else: one
:meth:`_Transport.receive` waits for input (and, for QUIC, for the protocol's
timer), feeds it to the protocol and returns; :meth:`_Transport.collect`
moves what the protocol wants to send into a backlog, and
:meth:`_Transport.send_backlog` writes that backlog.  Every ``OSError`` and
AnyIO error is caught here: a failed read becomes ``connection_lost()`` on
the protocol, a failed write a :class:`~hcore_io.WriteError`.  Which task
reads or writes, and when, is the connection's business.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream, UnreliableObjectStream

from hcore import Address, Datagram
from hcore.protocols import HTTPOverQUICProtocol, HTTPOverTCPProtocol, HTTPProtocol
from hcore_io._exceptions import ReadError, WriteError
from hcore_io.networking._interfaces import QUICStream

__all__ = (
    "QUICTransport",
    "TCPTransport",
    "Transport",
    "describe",
    "normalize_address",
)

# How much one read asks of a byte stream.  asyncio's transports read 256 KiB
# at a time: asking as much takes a bulk download's data in one turn of the
# connection's loop (a smaller size cost a turn per piece of it); a TLS stream
# returns a record (at most 16 KiB) anyway.
_READ_SIZE = 262144

# How long closing a stream may take (a TLS close_notify exchange) before it
# is closed forcefully.
_CLOSE_GRACE = 2.0

# How long the rest of a write whose task was cancelled may take, counted
# from the cancellation (or, where the stream cannot tell what an
# interrupted send left unsent, from the deadline that cancelled it), before
# the connection is given up as corrupt.  A peer that reads nothing for this
# long holds the connection's other streams up anyway; 2 s, like closing.
_WRITE_GRACE = 2.0


@runtime_checkable
class _ReportsUnsent(Protocol):
    """A byte stream whose interrupted ``send`` tells what it left unsent.

    :class:`~hcore_io.networking.EpollNetworking`'s streams do; AnyIO's
    cannot (see :meth:`TCPTransport.send_backlog`).
    """

    unsent: bytes | memoryview

    async def send(self, item: bytes) -> None: ...


# The errors a stream raises when the network fails under it.  ``ssl.SSLError``
# is an ``OSError``.
_STREAM_ERRORS = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.BusyResourceError,
    OSError,
)


def describe(error: BaseException) -> str:
    """Say what went wrong with a stream, looking through AnyIO's wrapping.

    :param error: an ``OSError`` or an AnyIO stream error.
    :return: e.g. ``"connection reset by peer"``.
    """
    for candidate in (error, error.__cause__, error.__context__):
        if isinstance(candidate, OSError) and candidate.strerror:
            return candidate.strerror[0].lower() + candidate.strerror[1:]
        if isinstance(candidate, OSError) and str(candidate):
            return str(candidate)
    if isinstance(error, anyio.ClosedResourceError):
        return "the stream was closed"
    if isinstance(error, anyio.BusyResourceError):
        return "another task is using the stream"
    return "the connection broke"


def normalize_address(value: object) -> Address | None:
    """Turn a socket address (IPv6 ones have four fields) into ``(host, port)``.

    :param value: what ``SocketAttribute.*_address`` gave, or ``None``.
    :return: the host and port, or ``None`` for anything else (a UNIX path).
    """
    if isinstance(value, tuple) and len(value) >= 2:
        host, port = value[0], value[1]
        if isinstance(host, str) and isinstance(port, int):
            if len(value) == 2:
                # The tuple itself, not a copy: a connection keeps it.
                return cast("Address", value)
            return (host, port)
    return None


class Transport(anyio.TypedAttributeProvider, metaclass=ABCMeta):
    """The network side of one protocol, over one stream."""

    #: Set when a read failed (not at a clean end of stream).
    read_error: ReadError | None = None
    #: Set when a write whose task was cancelled could not be finished (its
    #: rest failed, or took longer than the grace): the peer got part of a
    #: message, so the connection must be broken.
    interrupted_error: WriteError | None = None
    #: Whether the protocol may have something to send: set by whoever
    #: calls into it, cleared by :meth:`collect`, so that the protocol is
    #: asked only when it may have an answer (QUIC's ``datagrams_to_send()``
    #: is costly).
    dirty: bool = True

    @property
    @abstractmethod
    def protocol(self) -> HTTPProtocol:
        """The protocol this transport feeds."""
        raise NotImplementedError

    @property
    @abstractmethod
    def closes_itself(self) -> bool:
        """Whether the protocol ends the connection itself, before the stream closes.

        QUIC does (CONNECTION_CLOSE, idle timeout); closing a QUIC stream
        would tell the peer nothing.  TCP is ended by closing the stream.
        """
        raise NotImplementedError

    @abstractmethod
    async def receive(self) -> bool:
        """Wait for input and feed it to the protocol.

        Cancelling this loses nothing: either the input was fed, or it is
        still in the stream.

        :return: ``False`` once no more input can come (end of stream, or the
            stream failed); the protocol has been told.
        """
        raise NotImplementedError

    @abstractmethod
    def collect(self) -> bool:
        """Move what the protocol has to send into the backlog.

        :return: whether the backlog is non-empty.
        """
        raise NotImplementedError

    @abstractmethod
    async def send_backlog(self) -> None:
        """Write the backlog to the stream.

        The bytes belong to the connection, not to the calling task: a write
        that has begun is finished even if the task is cancelled, shielded
        but within a grace time; then the cancellation is raised.  If the
        rest could not be sent, :attr:`interrupted_error` is set.  A
        cancellation pending when it is called is raised before anything
        is written, and the backlog stays as it was (the connection's write
        lock relies on this instead of checking itself).

        :raises WriteError: if the stream failed.
        """
        raise NotImplementedError

    @abstractmethod
    def connection_lost(self) -> None:
        """Tell the protocol the stream is gone (once)."""
        raise NotImplementedError

    @abstractmethod
    def discard(self) -> None:
        """Drop what is waiting to be written (after a write failed)."""
        raise NotImplementedError

    async def send_eof(self) -> None:
        """Half-close the stream where it can be (plain TCP); else do nothing."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the stream, forcefully if a graceful close takes too long."""
        raise NotImplementedError


async def _close_stream(stream: anyio.abc.AsyncResource) -> None:
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(_CLOSE_GRACE) as scope:
            try:
                await stream.aclose()
            except (*_STREAM_ERRORS, anyio.EndOfStream):
                pass
        if scope.cancelled_caught:
            try:
                await anyio.aclose_forcefully(stream)
            except (*_STREAM_ERRORS, anyio.EndOfStream):
                pass


class TCPTransport(Transport):
    """Drives an HTTP/1.1 or HTTP/2 protocol over a byte stream (TCP or TLS).

    :param protocol: the protocol.
    :param stream: the stream.
    :param initial_data: bytes already read from the stream (by a listener
        that looked at them to choose the protocol); fed by the first
        :meth:`receive`.
    """

    def __init__(
        self,
        protocol: HTTPOverTCPProtocol,
        stream: ByteStream,
        initial_data: bytes = b"",
    ) -> None:
        self._protocol = protocol
        self._stream = stream
        self._initial_data = initial_data
        self._backlog: list[bytes] = []
        self._lost = False
        # Whether an interrupted send tells what it left unsent.
        self._reports_unsent = isinstance(stream, _ReportsUnsent)

    @property
    def protocol(self) -> HTTPOverTCPProtocol:
        return self._protocol

    @property
    def closes_itself(self) -> bool:
        return False

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._stream.extra_attributes

    #: How much one read asks the stream for.
    READ_SIZE = _READ_SIZE
    #: What the stream's receive raises that :meth:`receive_failed` takes.
    RECEIVE_ERRORS = (anyio.EndOfStream, *_STREAM_ERRORS)

    async def receive(self) -> bool:
        if self._initial_data:
            data, self._initial_data = self._initial_data, b""
            return self.received(data)
        try:
            data = await self._stream.receive(_READ_SIZE)
        except self.RECEIVE_ERRORS as exc:
            return self.receive_failed(exc)
        return self.received(data)

    def stream_to_read(self) -> ByteStream | None:
        """The stream, for a caller that awaits its receive itself.

        The connection's read does, so that a connection waiting idle keeps
        no coroutine frame of :meth:`receive` (memory each one holds).  It
        then hands the outcome to :meth:`received` or :meth:`receive_failed`.

        :return: ``None`` while initial data is to be fed (by :meth:`receive`).
        """
        return None if self._initial_data else self._stream

    def received(self, data: bytes) -> bool:
        """Feed what a read of the stream returned.

        :return: ``True`` (more may come).
        """
        self.dirty = True
        self._protocol.bytes_received(data)
        return True

    def receive_failed(self, exc: BaseException) -> bool:
        """Take the end of the stream, or a failed read (one of :attr:`RECEIVE_ERRORS`).

        :return: ``False`` (nothing more comes).
        """
        self.dirty = True
        if isinstance(exc, anyio.EndOfStream):
            self._protocol.eof_received()
            return False
        self.read_error = ReadError(f"reading failed: {describe(exc)}")
        self.read_error.__cause__ = exc
        self.connection_lost()
        return False

    def collect(self) -> bool:
        # Asked every time (``dirty`` is for QUIC, where asking is costly):
        # bytes_to_send() is cheap, and this way output that code holding
        # the protocol produced on its own is not left behind.
        self.dirty = False
        data = self._protocol.bytes_to_send()
        if data:
            self._backlog.append(data)
        return bool(self._backlog)

    async def send_backlog(self) -> None:
        # A cancelled write is finished, not abandoned: the peer must never
        # get part of a message (an HTTP/2 frame cut short, a TLS record
        # half sent corrupts the connection for every stream).
        if self._reports_unsent:
            await self._send_finishing_cancelled()
        else:
            await self._send_shielded()

    def _take_backlog(self) -> bytes:
        # Taken out before the write: nothing may be written twice.
        data = b"".join(self._backlog)
        self._backlog.clear()
        return data

    async def _send(self, data: bytes) -> None:
        try:
            await self._stream.send(data)
        except (*_STREAM_ERRORS, RuntimeError) as exc:
            # asyncio raises RuntimeError for a write after write_eof().
            raise WriteError(f"writing failed: {describe(exc)}") from exc

    async def _send_finishing_cancelled(self) -> None:
        # No cancel scope unless a cancellation came: the stream says what
        # an interrupted send left, and only that rest is sent shielded.
        data = self._take_backlog()
        try:
            await self._send(data)
        except WriteError:
            raise
        except BaseException:
            stream = self._stream
            assert isinstance(stream, _ReportsUnsent)
            rest = stream.unsent
            stream.unsent = b""
            if len(rest) == len(data):
                # Cancelled before anything was written (a send raises a
                # pending cancellation first): the bytes stay queued.
                self._backlog.insert(0, data)
                raise
            grace = anyio.current_time() + _WRITE_GRACE
            with anyio.CancelScope(shield=True, deadline=grace) as scope:
                try:
                    await stream.send(bytes(rest))
                except _STREAM_ERRORS as exc:
                    self._interrupted(exc)
            if scope.cancelled_caught:
                self._interrupted()
            raise

    async def _send_shielded(self) -> None:
        # AnyIO's streams cannot tell what a cancelled send left unsent (a
        # Trio send loops over partial writes; a TLSStream has consumed the
        # plain text, and marks itself broken once its record is cut), so
        # the send is shielded from the start.  Its bound: the deadline that
        # would have cancelled it (a timeout), plus the grace.  A task under
        # no deadline is not shielded: nothing would bound the wait once it
        # is cancelled (a server shutting down, a peer that never reads), so
        # its interrupted write breaks the connection.
        deadline = anyio.current_effective_deadline()
        if deadline == math.inf:
            # Raises a pending cancellation (one from a scope without a
            # deadline) before anything is taken from the backlog.
            await anyio.lowlevel.checkpoint_if_cancelled()
            try:
                await self._send(self._take_backlog())
            except WriteError:
                raise
            except BaseException:
                self.interrupted_error = WriteError(
                    "a write was interrupted by a cancellation"
                )
                raise
            return
        if deadline == -math.inf:
            # Already cancelled: nothing has begun, the backlog stays.
            await anyio.lowlevel.checkpoint_if_cancelled()
        data = self._take_backlog()
        with anyio.CancelScope(shield=True, deadline=deadline + _WRITE_GRACE) as scope:
            await self._send(data)
        if scope.cancelled_caught:
            self._interrupted()
        # A cancellation that came meanwhile goes on to the task now (a
        # check, not a yield, when there is none).
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self.interrupted_error is not None:
            # Not reached: the deadline that cancelled the task has passed.
            raise self.interrupted_error

    def _interrupted(self, cause: BaseException | None = None) -> None:
        # The rest failed (``cause``), or the grace passed.
        if self.interrupted_error is not None:
            return
        if cause is None:
            why = f"not sent within {_WRITE_GRACE} s"
        else:
            why = f"failed: {describe(cause)}"
        self.interrupted_error = WriteError(
            f"a write was interrupted and its rest {why}"
        )
        self.interrupted_error.__cause__ = cause

    def connection_lost(self) -> None:
        if not self._lost:
            self._lost = True
            self.dirty = True
            self._protocol.connection_lost()

    def discard(self) -> None:
        self._protocol.bytes_to_send()
        self._backlog.clear()

    async def send_eof(self) -> None:
        # TLS streams cannot half-close; they simply wait for the peer.
        try:
            await self._stream.send_eof()
        except (NotImplementedError, *_STREAM_ERRORS):
            pass

    async def aclose(self) -> None:
        await _close_stream(self._stream)


class QUICTransport(Transport):
    """Drives an HTTP/3 protocol over a datagram stream, and its timer.

    The protocol is told the time (``clock()``) before each datagram it is
    fed, when its timer fires, and before it is asked for datagrams.  On a
    :class:`~hcore_io.networking.QUICStream` the routed connection ids are
    updated before anything is sent, so that a listener knows a server
    connection's ids before the client can answer its first flight.

    :param protocol: the protocol.
    :param stream: the stream.
    """

    def __init__(
        self,
        protocol: HTTPOverQUICProtocol,
        stream: UnreliableObjectStream[Datagram],
    ) -> None:
        self._protocol = protocol
        self._stream = stream
        self._backlog: list[Datagram] = []
        self._lost = False
        self._routed_ids: tuple[bytes, ...] = ()

    @property
    def protocol(self) -> HTTPOverQUICProtocol:
        return self._protocol

    @property
    def closes_itself(self) -> bool:
        return True

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._stream.extra_attributes

    async def receive(self) -> bool:
        timer = self._protocol.get_timer()
        datagram: Datagram | None = None
        with anyio.CancelScope(deadline=math.inf if timer is None else timer):
            try:
                datagram = await self._stream.receive()
            except anyio.EndOfStream:
                self.connection_lost()
                return False
            except _STREAM_ERRORS as exc:
                self.read_error = ReadError(f"reading failed: {describe(exc)}")
                self.read_error.__cause__ = exc
                self.connection_lost()
                return False
        self.dirty = True
        # RFC 9000 §10.1: the idle timeout and the loss-recovery timers of
        # RFC 9002 run on the protocol's clock, so it is told the time both
        # when a datagram arrives and when its timer is due.
        self._protocol.clock(anyio.current_time())
        if datagram is not None:
            self._protocol.datagram_received(datagram)
        return True

    def collect(self) -> bool:
        if self.dirty:
            self.dirty = False
            self._protocol.clock(anyio.current_time())
            datagrams = self._protocol.datagrams_to_send()
            if datagrams:
                self._backlog.extend(datagrams)
            self._update_connection_ids()
        return bool(self._backlog)

    async def send_backlog(self) -> None:
        while self._backlog:
            try:
                await self._stream.send(self._backlog[0])
            except _STREAM_ERRORS as exc:
                self._backlog.clear()
                raise WriteError(f"sending a datagram failed: {describe(exc)}") from exc
            del self._backlog[0]

    def connection_lost(self) -> None:
        if not self._lost:
            self._lost = True
            self.dirty = True
            self._protocol.connection_lost()

    def discard(self) -> None:
        self._backlog.clear()

    async def aclose(self) -> None:
        await _close_stream(self._stream)

    def _update_connection_ids(self) -> None:
        if not isinstance(self._stream, QUICStream):
            return
        ids: Sequence[bytes] = self._protocol.connection_ids
        if tuple(ids) != self._routed_ids:
            self._routed_ids = tuple(ids)
            self._stream.update_connection_ids(self._routed_ids)
