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
from typing import Any

import anyio
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
            return (host, port)
    return None


class Transport(anyio.TypedAttributeProvider, metaclass=ABCMeta):
    """The network side of one protocol, over one stream."""

    #: Set when a read failed (not at a clean end of stream).
    read_error: ReadError | None = None
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
    def breaks_on_partial_write(self) -> bool:
        """Whether an interrupted write leaves the peer with a corrupt stream."""
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

    @property
    def protocol(self) -> HTTPOverTCPProtocol:
        return self._protocol

    @property
    def breaks_on_partial_write(self) -> bool:
        return True

    @property
    def closes_itself(self) -> bool:
        return False

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._stream.extra_attributes

    async def receive(self) -> bool:
        if self._initial_data:
            data, self._initial_data = self._initial_data, b""
            self.dirty = True
            self._protocol.bytes_received(data)
            return True
        try:
            data = await self._stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            self.dirty = True
            self._protocol.eof_received()
            return False
        except _STREAM_ERRORS as exc:
            self.read_error = ReadError(f"reading failed: {describe(exc)}")
            self.read_error.__cause__ = exc
            self.connection_lost()
            return False
        self.dirty = True
        self._protocol.bytes_received(data)
        return True

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
        data = b"".join(self._backlog)
        # Taken out before the write: after an interrupted write the
        # connection is broken anyway, and nothing may be written twice.
        self._backlog.clear()
        try:
            await self._stream.send(data)
        except (*_STREAM_ERRORS, RuntimeError) as exc:
            # asyncio raises RuntimeError for a write after write_eof().
            raise WriteError(f"writing failed: {describe(exc)}") from exc

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
    def breaks_on_partial_write(self) -> bool:
        # A datagram is sent whole or not at all, and QUIC recovers lost ones.
        return False

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
