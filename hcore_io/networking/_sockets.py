"""What the socket backends share: connecting, TLS, listening, error mapping.

Theory of operation: :class:`SocketNetworking` implements every networking
interface on top of three primitives a concrete backend provides, each
raising ``OSError`` when the operating system refuses:

- :meth:`SocketNetworking._open_tcp` connects one TCP stream;
- :meth:`SocketNetworking._open_tcp_listeners` binds listening sockets;
- :meth:`SocketNetworking._open_udp` binds one unconnected datagram socket.

Listening sockets get ``SO_REUSEPORT`` when the backend was made with
``reuse_port=True`` (several processes serving one port).

Everything above them is common: timeouts become
:exc:`~hcore_io.ConnectTimeout`, ``OSError`` and ``ssl.SSLError`` become
:exc:`~hcore_io.ConnectError` or :exc:`~hcore_io.NetworkError`, TLS is
AnyIO's ``TLSStream`` over the backend's stream (client contexts cached, see
:func:`~hcore_io.networking.start_tls`),
listeners are :class:`~hcore_io.networking._tcp_listener.TCPListener` and
:class:`~hcore_io.networking._quic_listener.QUICListener`.  So
:class:`~hcore_io.networking.SystemNetworking` and
:class:`~hcore_io.networking.EpollNetworking` differ only in how they move
bytes, and behave the same way everywhere else.
"""

from __future__ import annotations

import socket
import ssl
from abc import abstractmethod
from collections.abc import Sequence

import anyio
from anyio.abc import ByteStream, Listener, SocketListener, UnreliableObjectStream

from hcore import Address, ClientTLSConfig, Datagram, ServerTLSConfig
from hcore_io._exceptions import ConnectError, ConnectTimeout, NetworkError
from hcore_io.networking._datagrams import PeerDatagramStream, normalize_address
from hcore_io.networking._interfaces import (
    ClientNetworking,
    DatagramStream,
    QUICStream,
    ServerNetworking,
)
from hcore_io.networking._quic_listener import QUICListener
from hcore_io.networking._tcp_listener import TCPListener, set_nodelay
from hcore_io.networking._tls import server_ssl_context, start_tls

__all__ = ("SocketNetworking", "bind_host")


def bind_host(host: str) -> str | None:
    """The host to bind for a listening address.

    :param host: the address's host, possibly in brackets.
    :return: ``None`` for ``""`` (every interface, as AnyIO's ``None``).
    """
    return host.strip("[]") or None


class SocketNetworking(ClientNetworking, ServerNetworking):
    """TCP, TLS, UDP and QUIC listeners over a backend's sockets.

    :param tls_handshake_timeout: seconds a client of a TLS listener gets to
        complete its handshake before it is dropped.
    :param quic_queue_size: datagrams queued per QUIC connection of a
        listener before more are dropped.
    :param reuse_port: bind listening sockets (TCP and QUIC) with
        ``SO_REUSEPORT``, so that several processes can listen on the same
        port and the kernel spreads connections between them.
    :raises ValueError: ``reuse_port`` on a system without
        ``SO_REUSEPORT``.
    """

    def __init__(
        self,
        *,
        tls_handshake_timeout: float = 10.0,
        quic_queue_size: int = 256,
        reuse_port: bool = False,
    ) -> None:
        if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ValueError("reuse_port needs SO_REUSEPORT, which this system lacks")
        self.tls_handshake_timeout = tls_handshake_timeout
        self.quic_queue_size = quic_queue_size
        self.reuse_port = reuse_port

    @abstractmethod
    async def _open_tcp(self, host: str, port: int) -> ByteStream:
        """Connect a TCP stream to ``host`` (a name or an IP, no brackets).

        :raises OSError: the connection cannot be made.
        """
        raise NotImplementedError

    @abstractmethod
    async def _open_tcp_listeners(
        self, host: str | None, port: int, *, reuse_port: bool
    ) -> list[SocketListener]:
        """Bind listening TCP sockets (``None``: every interface).

        :param reuse_port: set ``SO_REUSEPORT`` on them.
        :raises OSError: the address cannot be bound.
        """
        raise NotImplementedError

    @abstractmethod
    async def _open_udp(
        self,
        family: socket.AddressFamily,
        host: str | None,
        port: int,
        *,
        reuse_port: bool = False,
    ) -> UnreliableObjectStream[Datagram]:
        """Bind an unconnected datagram socket.

        :param family: ``AF_INET``, ``AF_INET6``, or ``AF_UNSPEC`` to take
            the family of ``host``.
        :param host: the local host; ``None`` binds every interface.
        :param port: the local port; 0 lets the system pick one.
        :param reuse_port: set ``SO_REUSEPORT`` before binding.
        :raises OSError: the socket cannot be opened or bound.
        """
        raise NotImplementedError

    async def connect_tcp(
        self,
        address: Address,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        """Open a TCP connection (``TCP_NODELAY`` set), IPv4 or IPv6.

        Host names are resolved and their addresses tried with Happy
        Eyeballs (RFC 8305).

        :param address: host name or IP address, and port.
        :param timeout: seconds to give up connecting after.
        :raises hcore_io.ConnectError: the connection cannot be made.
        :raises hcore_io.ConnectTimeout: ``timeout`` passed first.
        """
        try:
            with anyio.fail_after(timeout):
                return await self._connect(address)
        except TimeoutError as exc:
            raise ConnectTimeout(f"connecting to {address!r} timed out") from exc

    async def _connect(self, address: Address) -> ByteStream:
        host, port = address
        try:
            stream = await self._open_tcp(host.strip("[]"), port)
        except OSError as exc:
            raise ConnectError(f"cannot connect to {address!r}: {exc}") from exc
        set_nodelay(stream)
        return stream

    async def connect_tcp_tls(
        self,
        address: Address,
        *,
        server_name: str | None = None,
        tls_config: ClientTLSConfig = ClientTLSConfig(),  # noqa: B008
        alpn_protocols: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        """Open a TCP connection and complete a TLS handshake over it.

        :param address: host name or IP address, and port.
        :param server_name: the name for SNI and verification; defaults to
            the host of ``address``.
        :param tls_config: how to verify the server and present a client
            certificate.
        :param alpn_protocols: ALPN ids to offer, most preferred first.
        :param timeout: seconds for connect and handshake together.
        :return: a TLS stream; ``TLSAttribute.alpn_protocol`` and
            ``TLSAttribute.tls_version`` tell what was negotiated.
        :raises ValueError: ``tls_config.minimum_version`` is unknown.
        :raises hcore_io.ConnectError: connecting or the handshake fails
            (an untrusted certificate included), or a certificate file of
            ``tls_config`` cannot be loaded.
        :raises hcore_io.ConnectTimeout: ``timeout`` passed first.
        """
        hostname = server_name or address[0].strip("[]")
        try:
            with anyio.fail_after(timeout):
                stream = await self._connect(address)
                return await start_tls(
                    stream,
                    server_name=hostname,
                    tls_config=tls_config,
                    alpn_protocols=alpn_protocols,
                )
        except TimeoutError as exc:
            raise ConnectTimeout(f"connecting to {address!r} timed out") from exc

    async def connect_udp(self, address: Address) -> DatagramStream:
        """Open a UDP socket towards a peer.

        The host is resolved once and the first address the resolver gives
        (IPv4 or IPv6) is used; it is the stream's
        ``SocketAttribute.remote_address``.  The socket is unconnected,
        bound to every interface of that family; datagrams from any other
        source are dropped.

        :raises hcore_io.ConnectError: the name cannot be resolved or the
            socket cannot be opened.
        """
        host, port = address
        try:
            infos = await anyio.getaddrinfo(
                host.strip("[]"), port, type=socket.SOCK_DGRAM
            )
            family, *_, sockaddr = infos[0]
            udp_socket = await self._open_udp(
                socket.AF_INET6 if family == socket.AF_INET6 else socket.AF_INET,
                None,
                0,
            )
        except (OSError, IndexError) as exc:
            raise ConnectError(f"cannot open UDP towards {address!r}: {exc}") from exc
        return PeerDatagramStream(udp_socket, normalize_address(sockaddr))

    async def listen_tcp(self, address: Address) -> Listener[ByteStream]:
        """Listen on a TCP address; port 0 lets the system pick one.

        :raises hcore_io.NetworkError: the address cannot be bound.
        """
        return await self._listen(address, None)

    async def listen_tcp_tls(
        self,
        address: Address,
        *,
        tls_config: ServerTLSConfig,
        alpn_protocols: Sequence[str] = (),
    ) -> Listener[ByteStream]:
        """Listen on a TCP address and complete a TLS handshake with each client.

        Handshakes run in the connections' own tasks, each limited to
        ``tls_handshake_timeout``; failures drop that connection only.

        :param tls_config: the certificate to present, and how to verify
            client certificates.
        :param alpn_protocols: ALPN ids to accept, most preferred first.
        :raises ValueError: no certificate, or an unknown ``minimum_version``.
        :raises hcore_io.NetworkError: the address cannot be bound, or the
            certificate or key cannot be loaded.
        """
        try:
            context = await anyio.to_thread.run_sync(
                server_ssl_context, tls_config, alpn_protocols
            )
        except (OSError, ssl.SSLError) as exc:
            raise NetworkError(f"invalid server TLS settings: {exc}") from exc
        return await self._listen(address, context)

    async def _listen(
        self, address: Address, context: ssl.SSLContext | None
    ) -> TCPListener:
        host, port = address
        try:
            listeners = await self._open_tcp_listeners(
                bind_host(host), port, reuse_port=self.reuse_port
            )
        except OSError as exc:
            raise NetworkError(f"cannot listen on {address!r}: {exc}") from exc
        return TCPListener(
            listeners,
            ssl_context=context,
            handshake_timeout=self.tls_handshake_timeout,
        )

    async def listen_quic(
        self,
        address: Address,
        *,
        quic_connection_id_length: int,
        quic_supported_versions: Sequence[int],
    ) -> Listener[QUICStream]:
        """Listen for QUIC on a UDP address; port 0 lets the system pick one.

        See :class:`hcore_io.networking._quic_listener.QUICListener` for the
        routing.

        :raises hcore_io.NetworkError: the address cannot be bound.
        """
        host, port = address
        local_host = bind_host(host)
        try:
            udp_socket = await self._open_udp(
                socket.AF_INET6 if local_host is None else socket.AF_UNSPEC,
                local_host,
                port,
                reuse_port=self.reuse_port,
            )
        except OSError as exc:
            raise NetworkError(f"cannot listen on {address!r}: {exc}") from exc
        return QUICListener(
            udp_socket,
            connection_id_length=quic_connection_id_length,
            supported_versions=quic_supported_versions,
            queue_size=self.quic_queue_size,
        )
