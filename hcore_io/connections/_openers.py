"""Openers: connect to a server and return an open HTTPConnection.

An opener holds a protocol factory, a networking backend and the TLS
settings; calling it with an address makes one connection.  Swapping the
HTTP version means swapping the factory, swapping the networking means
passing another backend; the rest of the code stays the same.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

import anyio
from anyio.abc import AsyncResource, SocketAttribute
from anyio.streams.tls import TLSAttribute

from hcore import Address, ClientTLSConfig, HCoreError
from hcore.protocols import HTTPOverQUICClientFactory, HTTPOverTCPFactory
from hcore_io._exceptions import ConnectError
from hcore_io.connections._connection import DEFAULT_MAX_BUFFERED_DATA, HTTPConnection
from hcore_io.connections._transport_base import normalize_address
from hcore_io.networking._interfaces import TCPClientNetworking, UDPClientNetworking

__all__ = ("HTTPOpener", "HTTPOverQUICOpener", "HTTPOverTCPOpener")

_CONNECT_ERRORS = (OSError, anyio.BrokenResourceError, anyio.EndOfStream)


def _system_networking() -> TCPClientNetworking | UDPClientNetworking:
    from hcore_io.networking import SystemNetworking

    return SystemNetworking()


async def _discard(resource: AsyncResource) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await anyio.aclose_forcefully(resource)
        except (*_CONNECT_ERRORS, anyio.ClosedResourceError):
            pass


class HTTPOpener(metaclass=ABCMeta):
    """Opens HTTP connections to servers."""

    @abstractmethod
    async def __call__(
        self, address: Address, *, tls: bool = True, server_name: str | None = None
    ) -> HTTPConnection:
        """Connect to a server and return the open connection.

        :param address: host name or IP address, and port.
        :param tls: whether to use TLS (``https``); QUIC always does.
        :param server_name: the name for SNI and certificate verification;
            the host of ``address`` if omitted.
        :raises hcore_io.ConnectError: if the connection cannot be made.
        :raises hcore_io.ConnectTimeout: if connecting took too long.
        """
        raise NotImplementedError


class HTTPOverTCPOpener(HTTPOpener):
    """Opens HTTP/1.1 or HTTP/2 connections over TCP, with or without TLS.

    With TLS the factory's ALPN ids are offered, and the negotiated ALPN id
    and TLS version are passed to it, so an
    :class:`~hcore.protocols.ALPNHTTPFactory` picks the version the server
    chose.  Without TLS the factory is called with neither: an HTTP/2 factory
    then speaks HTTP/2 with prior knowledge (h2c).

    :param factory: makes the protocol of each connection.
    :param networking: the backend; :class:`~hcore_io.networking.SystemNetworking`
        if omitted.
    :param tls_config: how to verify servers and present a client certificate.
    :param connect_timeout: seconds for connecting and the TLS handshake.
    :param max_buffered_data: each connection's per-queue bound (see
        :class:`HTTPConnection`).
    """

    def __init__(
        self,
        factory: HTTPOverTCPFactory,
        *,
        networking: TCPClientNetworking | None = None,
        tls_config: ClientTLSConfig | None = None,
        connect_timeout: float | None = None,
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> None:
        self._factory = factory
        self._networking = networking
        self._tls_config = tls_config or ClientTLSConfig()
        self._connect_timeout = connect_timeout
        self._max_buffered_data = max_buffered_data

    @property
    def factory(self) -> HTTPOverTCPFactory:
        """The protocol factory."""
        return self._factory

    async def __call__(
        self, address: Address, *, tls: bool = True, server_name: str | None = None
    ) -> HTTPConnection:
        networking = self._networking
        if networking is None:
            default = _system_networking()
            assert isinstance(default, TCPClientNetworking)
            networking = self._networking = default
        if tls:
            stream = await networking.connect_tcp_tls(
                address,
                server_name=server_name,
                tls_config=self._tls_config,
                alpn_protocols=self._factory.alpn_protocols,
                timeout=self._connect_timeout,
            )
        else:
            stream = await networking.connect_tcp(
                address, timeout=self._connect_timeout
            )
        try:
            protocol = self._factory(
                tls_version=stream.extra(TLSAttribute.tls_version, None),
                alpn_protocol=stream.extra(TLSAttribute.alpn_protocol, None),
            )
            connection = HTTPConnection(
                protocol, stream, max_buffered_data=self._max_buffered_data
            )
            await connection.open()
        except HCoreError as exc:
            await _discard(stream)
            if isinstance(exc, ConnectError):
                raise
            raise ConnectError(f"cannot start HTTP on {address}: {exc}") from exc
        except BaseException:
            await _discard(stream)
            raise
        return connection


class HTTPOverQUICOpener(HTTPOpener):
    """Opens HTTP/3 connections over QUIC.

    The host name is resolved once, by the networking's ``connect_udp``; the
    protocol is made with that resolved address, which is where every
    datagram goes and the only address answers are accepted from (QUIC stacks
    drop datagrams from any other), so ``localhost`` works like ``127.0.0.1``.

    :param factory: makes the protocol of each connection.
    :param networking: the backend; :class:`~hcore_io.networking.SystemNetworking`
        if omitted.
    :param tls_config: how to verify servers and present a client certificate.
    :param max_buffered_data: each connection's per-queue bound (see
        :class:`HTTPConnection`).
    """

    def __init__(
        self,
        factory: HTTPOverQUICClientFactory,
        *,
        networking: UDPClientNetworking | None = None,
        tls_config: ClientTLSConfig | None = None,
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> None:
        self._factory = factory
        self._networking = networking
        self._tls_config = tls_config or ClientTLSConfig()
        self._max_buffered_data = max_buffered_data

    @property
    def factory(self) -> HTTPOverQUICClientFactory:
        """The protocol factory."""
        return self._factory

    async def __call__(
        self, address: Address, *, tls: bool = True, server_name: str | None = None
    ) -> HTTPConnection:
        """Open an HTTP/3 connection (its handshake completes with the first use).

        :raises ValueError: if ``tls`` is false: QUIC always uses TLS.
        """
        if not tls:
            raise ValueError("HTTP/3 runs over QUIC, which always uses TLS")
        networking = self._networking
        if networking is None:
            default = _system_networking()
            assert isinstance(default, UDPClientNetworking)
            networking = self._networking = default
        stream = await networking.connect_udp(address)
        try:
            remote_address = normalize_address(
                stream.extra(SocketAttribute.remote_address, None)
            )
            protocol = self._factory(
                remote_address=remote_address or address,
                server_name=server_name or address[0],
                tls_config=self._tls_config,
            )
            connection = HTTPConnection(
                protocol, stream, max_buffered_data=self._max_buffered_data
            )
            await connection.open()
        except (HCoreError, *_CONNECT_ERRORS) as exc:
            await _discard(stream)
            if isinstance(exc, ConnectError):
                raise
            raise ConnectError(f"cannot start HTTP/3 with {address}: {exc}") from exc
        except BaseException:
            await _discard(stream)
            raise
        return connection
