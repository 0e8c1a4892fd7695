"""What a networking backend offers the connection layer.

A backend opens and accepts byte streams (TCP, optionally TLS) and datagram
streams (UDP for a QUIC client, one :class:`QUICStream` per QUIC connection a
listener routes).  Streams are AnyIO streams, so anything written for AnyIO
(its TLS wrapper included) works over every backend.  Addresses and the
negotiated TLS details are read with AnyIO's typed attributes
(``stream.extra(SocketAttribute.remote_address)``,
``stream.extra(TLSAttribute.alpn_protocol)``); backends that have no socket
provide the same attributes.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import TypeAlias

from anyio.abc import ByteStream, Listener, UnreliableObjectStream

from hcore import Address, ClientTLSConfig, Datagram, ServerTLSConfig

__all__ = (
    "ByteStream",
    "ClientNetworking",
    "DatagramStream",
    "QUICServerNetworking",
    "QUICStream",
    "ServerNetworking",
    "TCPClientNetworking",
    "TCPServerNetworking",
    "UDPClientNetworking",
)

#: A stream of datagrams, each with the peer's address (source when
#: received, destination when sent).
DatagramStream: TypeAlias = UnreliableObjectStream[Datagram]
DatagramStream.__doc__ = "Datagrams with their peer's address, as an AnyIO stream."


class QUICStream(UnreliableObjectStream[Datagram]):
    """The datagrams of one QUIC connection, as routed by a QUIC listener.

    The listener delivers to this stream every datagram addressed to one of
    its connection ids.  The connection layer keeps the ids current as the
    protocol issues and retires them; closing the stream makes the listener
    forget the connection.
    """

    @abstractmethod
    def update_connection_ids(self, connection_ids: Sequence[bytes]) -> None:
        """Route datagrams addressed to exactly these ids to this stream.

        :param connection_ids: the protocol's current ``connection_ids``.
        """
        raise NotImplementedError


class TCPClientNetworking(metaclass=ABCMeta):
    """Opens TCP connections, with or without TLS."""

    @abstractmethod
    async def connect_tcp(
        self,
        address: Address,
        *,
        # A parameter rather than the caller's cancel scope, so that the
        # backend can raise ConnectTimeout instead of a bare TimeoutError.
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ByteStream:
        """Open a TCP connection (``TCP_NODELAY`` set).

        :param address: host name or IP address, and port.
        :param timeout: seconds to give up connecting after; ``None`` waits
            as long as the operating system does.
        :raises hcore_io.ConnectError: if the connection cannot be made.
        :raises hcore_io.ConnectTimeout: if ``timeout`` passes first.
        """
        raise NotImplementedError

    @abstractmethod
    async def connect_tcp_tls(
        self,
        address: Address,
        *,
        server_name: str | None = None,
        tls_config: ClientTLSConfig = ClientTLSConfig(),  # noqa: B008
        alpn_protocols: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ByteStream:
        """Open a TCP connection and complete a TLS handshake over it.

        :param address: host name or IP address, and port.
        :param server_name: the name for SNI and verification; defaults to
            the host of ``address``.
        :param tls_config: how to verify the server and present a client
            certificate.
        :param alpn_protocols: ALPN ids to offer, most preferred first.
        :param timeout: seconds for connect and handshake together.
        :return: a stream whose ``TLSAttribute.alpn_protocol`` and
            ``TLSAttribute.tls_version`` tell what was negotiated.
        :raises hcore_io.ConnectError: if connecting or the handshake fails.
        :raises hcore_io.ConnectTimeout: if ``timeout`` passes first.
        """
        raise NotImplementedError


class UDPClientNetworking(metaclass=ABCMeta):
    """Opens UDP paths for QUIC clients."""

    @abstractmethod
    async def connect_udp(self, address: Address) -> DatagramStream:
        """Open a UDP socket towards a peer.

        The host name is resolved once; the stream's
        ``SocketAttribute.remote_address`` is that resolved address, and the
        QUIC protocol must be made with it, since QUIC stacks drop datagrams
        from any other address.

        :raises hcore_io.ConnectError: if the name cannot be resolved or the
            socket cannot be opened.
        """
        raise NotImplementedError


class TCPServerNetworking(metaclass=ABCMeta):
    """Accepts TCP connections, with or without TLS."""

    @abstractmethod
    async def listen_tcp(self, address: Address) -> Listener[ByteStream]:
        """Listen on a TCP address; port 0 lets the system pick one.

        The listener's ``SocketAttribute.local_address`` tells the port.
        """
        raise NotImplementedError

    @abstractmethod
    async def listen_tcp_tls(
        self,
        address: Address,
        *,
        tls_config: ServerTLSConfig,
        alpn_protocols: Sequence[str] = (),
    ) -> Listener[ByteStream]:
        """Listen on a TCP address and complete a TLS handshake with each client.

        :param tls_config: the certificate to present.
        :param alpn_protocols: ALPN ids to accept, most preferred first.
        """
        raise NotImplementedError


class QUICServerNetworking(metaclass=ABCMeta):
    """Accepts QUIC connections on one UDP socket."""

    @abstractmethod
    async def listen_quic(
        self,
        address: Address,
        *,
        quic_connection_id_length: int,
        quic_supported_versions: Sequence[int],
    ) -> Listener[QUICStream]:
        """Listen for QUIC on a UDP address; port 0 lets the system pick one.

        Datagrams are routed to connections by destination connection id.
        An Initial packet of a supported version with an unknown id starts a
        new connection; other unknown datagrams are dropped, and an
        unsupported version is answered with Version Negotiation.
        """
        raise NotImplementedError


class ClientNetworking(TCPClientNetworking, UDPClientNetworking):
    """Everything a client needs: TCP, TLS and UDP."""


class ServerNetworking(TCPServerNetworking, QUICServerNetworking):
    """Everything a server needs: TCP, TLS and QUIC listeners."""
