"""Adapters between a sans-IO protocol and one network stream: the
:class:`Transport` interface and what its implementations share.

A transport does the network side of a protocol and nothing else: one
:meth:`Transport.receive` waits for input (and, for QUIC, for the protocol's
timer), feeds it to the protocol and returns; :meth:`Transport.collect`
moves what the protocol wants to send into a backlog, and
:meth:`Transport.send_backlog` writes that backlog.  Every ``OSError`` and
AnyIO error is caught here: a failed read becomes ``connection_lost()`` on
the protocol, a failed write a :class:`~hcore_io.WriteError`.  Which task
reads or writes, and when, is the connection's business.

The implementations are :class:`~hcore_io.connections._tcp_transport.TCPTransport`
and :class:`~hcore_io.connections._quic_transport.QUICTransport`.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import cast

import anyio
import anyio.abc

from hcore import Address
from hcore.protocols import HTTPProtocol
from hcore_io._exceptions import ReadError, WriteError

__all__ = (
    "Transport",
    "describe",
    "normalize_address",
)

# How long closing a stream may take (a TLS close_notify exchange) before it
# is closed forcefully.
_CLOSE_GRACE = 2.0

# How long the rest of a write whose task was cancelled may take, counted
# from the cancellation (or, where the stream cannot tell what an
# interrupted send left unsent, from the deadline that cancelled it), before
# the connection is given up as corrupt.  A peer that reads nothing for this
# long holds the connection's other streams up anyway; 2 s, like closing.
_WRITE_GRACE = 2.0

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
