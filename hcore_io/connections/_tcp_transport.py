"""The transport of HTTP/1.1 and HTTP/2: a protocol over a byte stream (TCP
or TLS).

Most of it is about a write that a cancellation interrupts: the bytes
belong to the connection, so a write that has begun is finished (within a
grace time) rather than left cut short; see
:meth:`TCPTransport.send_backlog`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream

from hcore.protocols import HTTPOverTCPProtocol
from hcore_io._exceptions import ReadError, WriteError
from hcore_io.connections._transport_base import (
    _STREAM_ERRORS,
    _WRITE_GRACE,
    Transport,
    _close_stream,
    describe,
)

__all__ = ("TCPTransport",)

# What a failed send raises (asyncio raises RuntimeError for a write after
# write_eof()).
_SEND_ERRORS = (*_STREAM_ERRORS, RuntimeError)

# How much one read asks of a byte stream.  asyncio's transports read 256 KiB
# at a time: asking as much takes a bulk download's data in one turn of the
# connection's loop (a smaller size cost a turn per piece of it); a TLS stream
# returns a record (at most 16 KiB) anyway.
_READ_SIZE = 262144


@runtime_checkable
class _ReportsUnsent(Protocol):
    """A byte stream whose interrupted ``send`` tells what it left unsent.

    :class:`~hcore_io.networking.EpollNetworking`'s streams do; AnyIO's
    cannot (see :meth:`TCPTransport.send_backlog`).
    """

    unsent: bytes | memoryview

    async def send(self, item: bytes) -> None: ...


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

    def send_backlog(self) -> Coroutine[Any, Any, None]:
        # A cancelled write is finished, not abandoned: the peer must never
        # get part of a message (an HTTP/2 frame cut short, a TLS record
        # half sent corrupts the connection for every stream).  A plain
        # method returning the coroutine that writes: no frame of its own
        # on every write.
        if self._reports_unsent:
            return self._send_finishing_cancelled()
        return self._send_shielded()

    def send_backlog_nowait(self) -> bool:
        """Write the backlog at once if the stream can (its ``send_nowait``).

        No wait and no checkpoint: what the stream did not take stays first
        in the backlog, for :meth:`send_backlog`; so does everything if the
        stream has no ``send_nowait`` or its send failed (``send_backlog``
        meets the failure again and reports it).

        :return: whether the whole backlog left.
        """
        send = getattr(self._stream, "send_nowait", None)
        if send is None or not self._backlog:
            return not self._backlog
        data = self._take_backlog()
        try:
            sent: int = send(data)
        except _STREAM_ERRORS:
            sent = 0
        if sent < len(data):
            self._backlog.insert(0, data[sent:])
            return False
        return True

    def _take_backlog(self) -> bytes:
        # Taken out before the write: nothing may be written twice.
        data = b"".join(self._backlog)
        self._backlog.clear()
        return data

    async def _send(self, data: bytes) -> None:
        try:
            await self._stream.send(data)
        except _SEND_ERRORS as exc:
            raise WriteError(f"writing failed: {describe(exc)}") from exc

    async def _send_finishing_cancelled(self) -> None:
        # No cancel scope unless a cancellation came: the stream says what
        # an interrupted send left, and only that rest is sent shielded.
        # (_send written out: no frame of its own on every write.)
        backlog = self._backlog
        data = backlog.pop() if len(backlog) == 1 else self._take_backlog()
        try:
            await self._stream.send(data)
        except _SEND_ERRORS as exc:
            raise WriteError(f"writing failed: {describe(exc)}") from exc
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
