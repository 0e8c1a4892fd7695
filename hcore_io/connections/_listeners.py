"""Listeners: accept connections and hand each to a handler in its own task.

A listener wraps a networking listener and a protocol factory.  For every
accepted stream it makes the protocol, wraps both in an
:class:`HTTPConnection`, opens it and calls ``await handler(connection)`` in
a task of its own; when the handler returns (or fails) the connection is
closed.  A handler's exception is logged and never stops the listener.
"""

from __future__ import annotations

import functools
import logging
from abc import ABCMeta, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack

import anyio
from anyio.abc import ByteStream, Listener, SocketAttribute, TaskGroup
from anyio.streams.tls import TLSAttribute

from hcore import Address, HCoreError, ServerTLSConfig
from hcore.protocols import (
    HTTPOverQUICServerFactory,
    HTTPOverTCPFactory,
    HTTPOverTCPProtocol,
)
from hcore_io._exceptions import NetworkError
from hcore_io.connections._connection import DEFAULT_MAX_BUFFERED_DATA, HTTPConnection
from hcore_io.connections._prior_knowledge import PriorKnowledgeHTTPFactory
from hcore_io.connections._transport_base import describe, normalize_address
from hcore_io.networking._interfaces import (
    QUICServerNetworking,
    QUICStream,
    TCPServerNetworking,
)

__all__ = (
    "HTTPListener",
    "HTTPMultiListener",
    "HTTPOverQUICListener",
    "HTTPOverTCPListener",
    "Handler",
)

logger = logging.getLogger("hcore_io.connections")

#: What :meth:`HTTPListener.serve` calls with each accepted connection.
Handler = Callable[[HTTPConnection], Awaitable[object]]

_STREAM_ERRORS = (
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


def _system_networking() -> TCPServerNetworking | QUICServerNetworking:
    from hcore_io.networking import SystemNetworking

    return SystemNetworking()


async def _discard(stream: anyio.abc.AsyncResource) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await anyio.aclose_forcefully(stream)
        except _STREAM_ERRORS:
            pass


async def _run_handler(
    listener: _NetworkListener, stream: ByteStream | QUICStream, handler: Handler
) -> None:
    """Make the stream's connection, open it, serve it, close it.

    One coroutine for all of it: its frame is kept by every connection
    for as long as it lives.
    """
    connection = await listener._connect(stream)
    if connection is None:
        return
    try:
        try:
            await connection.open()
        except NetworkError as exc:
            logger.debug(
                "connection from %s lost at once: %s", connection.remote_address, exc
            )
            return
        try:
            await handler(connection)
        except Exception:
            logger.exception(
                "handler of HTTP/%s connection from %s failed",
                connection.http_version,
                connection.remote_address,
            )
    finally:
        await connection.aclose()


class HTTPListener(metaclass=ABCMeta):
    """Accepts HTTP connections and serves each with a handler."""

    @property
    @abstractmethod
    def local_addresses(self) -> Sequence[Address]:
        """The addresses listened on (with the ports the system picked)."""
        raise NotImplementedError

    @abstractmethod
    async def serve(
        self, handler: Handler, task_group: TaskGroup | None = None
    ) -> None:
        """Accept connections until closed; ``await handler(connection)`` for each.

        Each connection runs in a task of its own (in ``task_group`` if
        given), is opened before the handler is called and closed after it
        returns.  An exception from a handler is logged; the listener goes
        on.  Returns once the listener was closed and, unless ``task_group``
        was given, every handler has returned.

        :param handler: serves one connection.
        :param task_group: where to run the connections' tasks.
        """
        raise NotImplementedError

    @abstractmethod
    async def aclose(self) -> None:
        """Stop accepting connections; those accepted carry on.

        A graceful shutdown closes the listener, then calls
        :meth:`HTTPConnection.close_gracefully` on each connection being
        served, and lets :meth:`serve` return once their handlers have.  QUIC
        connections share the listener's UDP socket: it stays open until the
        last of them is closed.
        """
        raise NotImplementedError

    async def __aenter__(self) -> HTTPListener:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _NetworkListener(HTTPListener):
    """Shared part of the listeners over one networking listener."""

    def __init__(self, listener: Listener[ByteStream] | Listener[QUICStream]) -> None:
        self._listener = listener
        self._closed = False

    @property
    def local_addresses(self) -> Sequence[Address]:
        address = normalize_address(
            self._listener.extra(SocketAttribute.local_address, None)
        )
        return [] if address is None else [address]

    async def serve(
        self, handler: Handler, task_group: TaskGroup | None = None
    ) -> None:
        on_stream = functools.partial(_run_handler, self, handler=handler)

        async with AsyncExitStack() as stack:
            if task_group is None:
                # Ours, so that closing the listener lets connections finish.
                task_group = await stack.enter_async_context(anyio.create_task_group())
            try:
                await self._listener.serve(on_stream, task_group)
            except anyio.ClosedResourceError:
                if not self._closed:
                    raise NetworkError("the listener failed") from None
            except _STREAM_ERRORS as exc:
                if not self._closed:
                    raise NetworkError(
                        f"accepting connections failed: {describe(exc)}"
                    ) from exc

    async def aclose(self) -> None:
        self._closed = True
        try:
            await self._listener.aclose()
        except _STREAM_ERRORS:
            pass

    @abstractmethod
    async def _connect(self, stream: ByteStream | QUICStream) -> HTTPConnection | None:
        raise NotImplementedError


class HTTPOverTCPListener(_NetworkListener):
    """Accepts HTTP/1.1 and HTTP/2 connections over TCP, with or without TLS.

    With TLS the factory's ALPN ids are accepted, and the chosen id and the
    TLS version are passed to it.  With a
    :class:`~hcore_io.connections.PriorKnowledgeHTTPFactory` and no ALPN id,
    the listener reads the client's first bytes to see whether it speaks
    HTTP/2 with prior knowledge (h2c) and feeds them to the protocol chosen.

    :param factory: makes the protocol of each connection.
    :param listener: the networking listener.
    :param preface_timeout: seconds a client may take to send its first bytes
        when they decide the version.
    :param max_buffered_data: each connection's per-queue bound.
    """

    def __init__(
        self,
        factory: HTTPOverTCPFactory,
        listener: Listener[ByteStream],
        *,
        preface_timeout: float = 10.0,
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> None:
        super().__init__(listener)
        self._factory = factory
        self._preface_timeout = preface_timeout
        self._max_buffered_data = max_buffered_data

    @classmethod
    async def create(
        cls,
        factory: HTTPOverTCPFactory,
        networking: TCPServerNetworking | None = None,
        *,
        local_address: Address,
        tls_config: ServerTLSConfig | None = None,
        preface_timeout: float = 10.0,
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> HTTPOverTCPListener:
        """Listen on a local address.

        :param factory: makes the protocol of each connection.
        :param networking: the backend;
            :class:`~hcore_io.networking.SystemNetworking` if omitted.
        :param local_address: where to listen; port 0 lets the system pick.
        :param tls_config: the certificate for ``https``; ``None`` for plain TCP.
        :param preface_timeout: see the class.
        :param max_buffered_data: see the class.
        """
        if networking is None:
            default = _system_networking()
            assert isinstance(default, TCPServerNetworking)
            networking = default
        if tls_config is None:
            listener = await networking.listen_tcp(local_address)
        else:
            listener = await networking.listen_tcp_tls(
                local_address,
                tls_config=tls_config,
                alpn_protocols=factory.alpn_protocols,
            )
        return cls(
            factory,
            listener,
            preface_timeout=preface_timeout,
            max_buffered_data=max_buffered_data,
        )

    async def _connect(self, stream: ByteStream | QUICStream) -> HTTPConnection | None:
        assert isinstance(stream, ByteStream)
        try:
            protocol, first_bytes = await self._make_protocol(stream)
        except (HCoreError, TimeoutError, *_STREAM_ERRORS) as exc:
            logger.info("refused a TCP connection: %r", exc)
            await _discard(stream)
            return None
        return HTTPConnection(
            protocol,
            stream,
            initial_data=first_bytes,
            max_buffered_data=self._max_buffered_data,
        )

    async def _make_protocol(
        self, stream: ByteStream
    ) -> tuple[HTTPOverTCPProtocol, bytes]:
        alpn_protocol = stream.extra(TLSAttribute.alpn_protocol, None)
        tls_version = stream.extra(TLSAttribute.tls_version, None)
        factory = self._factory
        if not isinstance(factory, PriorKnowledgeHTTPFactory) or alpn_protocol:
            protocol = factory(tls_version=tls_version, alpn_protocol=alpn_protocol)
            return protocol, b""
        first_bytes = b""
        with anyio.fail_after(self._preface_timeout):
            # Bounded: every round adds at least a byte, and stops at the
            # preface's length or at the first byte that differs from it.
            while factory.needs_more(first_bytes):
                first_bytes += await stream.receive()
        return factory.for_preface(first_bytes, tls_version=tls_version), first_bytes


class HTTPOverQUICListener(_NetworkListener):
    """Accepts HTTP/3 connections over QUIC, on one UDP socket.

    :param factory: makes the protocol of each connection.
    :param listener: the networking's QUIC listener.
    :param tls_config: the certificate to present.
    :param max_buffered_data: each connection's per-queue bound.
    """

    def __init__(
        self,
        factory: HTTPOverQUICServerFactory,
        listener: Listener[QUICStream],
        *,
        tls_config: ServerTLSConfig,
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> None:
        super().__init__(listener)
        self._factory = factory
        self._tls_config = tls_config
        self._max_buffered_data = max_buffered_data

    @classmethod
    async def create(
        cls,
        factory: HTTPOverQUICServerFactory,
        networking: QUICServerNetworking | None = None,
        *,
        local_address: Address,
        tls_config: ServerTLSConfig,
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> HTTPOverQUICListener:
        """Listen for QUIC on a local UDP address.

        :param factory: makes the protocol of each connection.
        :param networking: the backend;
            :class:`~hcore_io.networking.SystemNetworking` if omitted.
        :param local_address: where to listen; port 0 lets the system pick.
        :param tls_config: the certificate to present.
        :param max_buffered_data: see the class.
        """
        if networking is None:
            default = _system_networking()
            assert isinstance(default, QUICServerNetworking)
            networking = default
        listener = await networking.listen_quic(
            local_address,
            quic_connection_id_length=factory.quic_connection_id_length,
            quic_supported_versions=factory.quic_supported_versions,
        )
        return cls(
            factory,
            listener,
            tls_config=tls_config,
            max_buffered_data=max_buffered_data,
        )

    async def _connect(self, stream: ByteStream | QUICStream) -> HTTPConnection | None:
        assert isinstance(stream, QUICStream)
        try:
            protocol = self._factory(tls_config=self._tls_config)
        except HCoreError as exc:
            logger.warning("cannot serve a QUIC connection: %r", exc)
            await _discard(stream)
            return None
        return HTTPConnection(
            protocol, stream, max_buffered_data=self._max_buffered_data
        )


class HTTPMultiListener(HTTPListener):
    """Several listeners served as one: HTTP/1.1, HTTP/2 and HTTP/3 at once.

    :param listeners: the listeners.
    """

    def __init__(self, listeners: Sequence[HTTPListener]) -> None:
        self._listeners = tuple(listeners)

    @property
    def listeners(self) -> Sequence[HTTPListener]:
        """The listeners."""
        return self._listeners

    @property
    def local_addresses(self) -> Sequence[Address]:
        """Every listener's addresses, in order."""
        return [a for listener in self._listeners for a in listener.local_addresses]

    async def serve(
        self, handler: Handler, task_group: TaskGroup | None = None
    ) -> None:
        async with anyio.create_task_group() as group:
            for listener in self._listeners:
                group.start_soon(listener.serve, handler, task_group)

    async def aclose(self) -> None:
        for listener in self._listeners:
            await listener.aclose()
