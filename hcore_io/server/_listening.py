"""Accepting connections: networking listeners turned into HTTP connections.

The server needs each connection's protocol as well as the
:class:`~hcore_io.connections.HTTPConnection` that drives it, to start a
graceful close (GOAWAY) that lets streams in flight finish, which
``HTTPConnection`` does not offer (its ``aclose()`` closes at once).  So the
server accepts from the networking listeners itself, makes the protocol and
the connection, and keeps both; the h2c sniffing is
:class:`~hcore_io.connections.PriorKnowledgeHTTPFactory`'s.
"""

from __future__ import annotations

import logging
from abc import ABCMeta, abstractmethod
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import ByteStream, Listener, SocketAttribute, TaskGroup
from anyio.streams.tls import TLSAttribute

from hcore import Address, HCoreError, ServerTLSConfig
from hcore.protocols import (
    HTTPOverQUICServerFactory,
    HTTPOverTCPFactory,
    HTTPOverTCPProtocol,
    HTTPProtocol,
)
from hcore_io._exceptions import NetworkError
from hcore_io.connections import HTTPConnection, PriorKnowledgeHTTPFactory
from hcore_io.networking import QUICStream

__all__ = ("Acceptor", "ConnectionHandler", "QUICAcceptor", "TCPAcceptor")

logger = logging.getLogger("hcore.server")

#: Called with each opened connection and its protocol.
ConnectionHandler = Callable[[HTTPConnection, HTTPProtocol], Awaitable[None]]

_STREAM_ERRORS = (
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


def _address(value: object) -> Address | None:
    if isinstance(value, tuple) and len(value) >= 2:
        host, port = value[0], value[1]
        if isinstance(host, str) and isinstance(port, int):
            return (host, port)
    return None


async def _discard(stream: anyio.abc.AsyncResource) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await anyio.aclose_forcefully(stream)
        except _STREAM_ERRORS:
            pass


class Acceptor(metaclass=ABCMeta):
    """Accepts connections on one networking listener."""

    def __init__(self, listener: Listener[ByteStream] | Listener[QUICStream]) -> None:
        self._listener = listener
        self._closed = False

    @property
    def local_address(self) -> Address | None:
        """The bound address (with the port the system picked)."""
        return _address(self._listener.extra(SocketAttribute.local_address, None))

    async def serve(self, handler: ConnectionHandler, task_group: TaskGroup) -> None:
        """Accept until closed; run ``handler`` per connection in ``task_group``."""

        async def on_stream(stream: ByteStream | QUICStream) -> None:
            made = await self._make(stream)
            if made is None:
                return
            connection, protocol = made
            try:
                try:
                    await connection.open()
                except NetworkError as exc:
                    logger.debug("connection lost at once: %s", exc)
                    return
                await handler(connection, protocol)
            finally:
                await connection.aclose()

        try:
            await self._listener.serve(on_stream, task_group)
        except (*_STREAM_ERRORS, anyio.ClosedResourceError) as exc:
            if not self._closed:
                raise NetworkError(f"accepting connections failed: {exc!r}") from exc

    async def aclose(self) -> None:
        """Stop accepting; connections already accepted carry on."""
        self._closed = True
        try:
            await self._listener.aclose()
        except _STREAM_ERRORS:
            pass

    @abstractmethod
    async def _make(
        self, stream: ByteStream | QUICStream
    ) -> tuple[HTTPConnection, HTTPProtocol] | None:
        raise NotImplementedError


class TCPAcceptor(Acceptor):
    """HTTP/1.1 and HTTP/2 over TCP, with TLS (ALPN) or without (h2c sniffing).

    :param listener: the networking listener.
    :param factory: makes each connection's protocol.
    :param preface_timeout: seconds a plain-TCP client gets to send the bytes
        that tell HTTP/2 with prior knowledge from HTTP/1.1.
    :param max_buffered_data: each connection's per-queue bound.
    """

    def __init__(
        self,
        listener: Listener[ByteStream],
        factory: HTTPOverTCPFactory,
        *,
        preface_timeout: float,
        max_buffered_data: int,
    ) -> None:
        super().__init__(listener)
        self._factory = factory
        self._preface_timeout = preface_timeout
        self._max_buffered_data = max_buffered_data

    async def _make(
        self, stream: ByteStream | QUICStream
    ) -> tuple[HTTPConnection, HTTPProtocol] | None:
        assert isinstance(stream, ByteStream)
        try:
            protocol, first_bytes = await self._protocol(stream)
        except (HCoreError, TimeoutError, *_STREAM_ERRORS) as exc:
            logger.debug("refused a TCP connection: %r", exc)
            await _discard(stream)
            return None
        connection = HTTPConnection(
            protocol,
            stream,
            initial_data=first_bytes,
            max_buffered_data=self._max_buffered_data,
        )
        return connection, protocol

    async def _protocol(self, stream: ByteStream) -> tuple[HTTPOverTCPProtocol, bytes]:
        alpn_protocol = stream.extra(TLSAttribute.alpn_protocol, None)
        tls_version = stream.extra(TLSAttribute.tls_version, None)
        factory = self._factory
        if not isinstance(factory, PriorKnowledgeHTTPFactory) or alpn_protocol:
            protocol = factory(tls_version=tls_version, alpn_protocol=alpn_protocol)
            return protocol, b""
        first_bytes = b""
        with anyio.fail_after(self._preface_timeout):
            # Bounded: each round adds a byte at least, and it stops at the
            # preface's length or at the first byte that differs from it.
            while factory.needs_more(first_bytes):
                first_bytes += await stream.receive()
        return factory.for_preface(first_bytes, tls_version=tls_version), first_bytes


class QUICAcceptor(Acceptor):
    """HTTP/3 over QUIC, on one UDP socket.

    :param listener: the networking's QUIC listener.
    :param factory: makes each connection's protocol.
    :param tls_config: the certificate to present.
    :param max_buffered_data: each connection's per-queue bound.
    """

    def __init__(
        self,
        listener: Listener[QUICStream],
        factory: HTTPOverQUICServerFactory,
        *,
        tls_config: ServerTLSConfig,
        max_buffered_data: int,
    ) -> None:
        super().__init__(listener)
        self._factory = factory
        self._tls_config = tls_config
        self._max_buffered_data = max_buffered_data

    async def _make(
        self, stream: ByteStream | QUICStream
    ) -> tuple[HTTPConnection, HTTPProtocol] | None:
        assert isinstance(stream, QUICStream)
        try:
            protocol = self._factory(tls_config=self._tls_config)
        except HCoreError as exc:
            logger.warning("cannot serve a QUIC connection: %r", exc)
            await _discard(stream)
            return None
        connection = HTTPConnection(
            protocol, stream, max_buffered_data=self._max_buffered_data
        )
        return connection, protocol
