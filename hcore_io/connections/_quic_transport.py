"""The transport of HTTP/3: a QUIC protocol over a datagram stream, and its
timer.

The protocol keeps its own time (``clock()``); the transport tells it the
time and wakes it when its timer is due.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import UnreliableObjectStream

from hcore import Datagram
from hcore.protocols import HTTPOverQUICProtocol
from hcore_io._exceptions import ReadError, WriteError
from hcore_io.connections._transport_base import (
    _STREAM_ERRORS,
    Transport,
    _close_stream,
    describe,
)
from hcore_io.networking._interfaces import QUICStream

__all__ = ("QUICTransport",)


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
