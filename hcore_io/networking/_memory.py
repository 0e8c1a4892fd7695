"""In-process networking for tests and examples: :class:`MemoryNetworking`.

Theory of operation: one :class:`MemoryNetworking` object is a small private
internet.  Listeners and UDP sockets register under an address (port 0
takes the next free port, counting from 49152); connecting looks the address
up, so a client and a server share the object.  ``"localhost"`` means
``127.0.0.1``; a listener on ``0.0.0.0``, ``::`` or ``""`` takes connections
to any host on its port.  There is no DNS: other names only match listeners
registered under the same name.

TCP connections are pairs of bounded pipes (see
:mod:`hcore_io.networking._memory_streams`), so backpressure, EOF and close
behave as on a socket.  The memory "TLS" does no cryptography and verifies
nothing: ``connect_tcp_tls`` only checks that the listener is a TLS one,
picks the first of the *server's* ALPN ids that the client offered (as
OpenSSL does), and reports ``TLSAttribute.alpn_protocol``,
``TLSAttribute.tls_version`` (always ``"TLSv1.3"``) and
``TLSAttribute.server_side``.  Unlike a real TLS stream, the memory one
supports ``send_eof``.

UDP sockets deliver datagrams to the socket registered at the destination,
dropping them when there is none or its queue is full, as a network would.
A socket bound to a wildcard host answers each peer from the address that
peer sent to, so a client's source filtering works as on a real host.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
from anyio.abc import (
    ByteStream,
    Listener,
    SocketAttribute,
    UnreliableObjectStream,
)
from anyio.streams.tls import TLSAttribute

from hcore import Address, ClientTLSConfig, Datagram, ServerTLSConfig
from hcore_io._exceptions import ConnectError, ConnectTimeout, NetworkError
from hcore_io.networking._datagrams import PeerDatagramStream
from hcore_io.networking._interfaces import (
    ClientNetworking,
    DatagramStream,
    QUICStream,
    ServerNetworking,
)
from hcore_io.networking._memory_streams import (
    MemoryListener,
    address_family,
    make_pipe_pair,
)
from hcore_io.networking._queue import Queue
from hcore_io.networking._quic_listener import QUICListener

__all__ = ("MemoryNetworking",)

_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
# Peers a wildcard-bound UDP socket remembers the local address of.
_MAX_REMEMBERED_PEERS = 1024

_T = TypeVar("_T")


def _normalize_host(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        return ipaddress.ip_address(host.strip("[]")).compressed
    except ValueError:
        return host


def _tls_attributes(
    alpn_protocol: str | None, *, server_side: bool
) -> dict[Any, Callable[[], Any]]:
    return {
        TLSAttribute.alpn_protocol: lambda: alpn_protocol,
        TLSAttribute.tls_version: lambda: "TLSv1.3",
        TLSAttribute.server_side: lambda: server_side,
        TLSAttribute.standard_compatible: lambda: False,
    }


class _TCPEntry:
    """A listening address: where its connections go and whether it is TLS."""

    def __init__(
        self,
        accepted: Queue[ByteStream],
        alpn_protocols: Sequence[str] | None,
    ) -> None:
        self.accepted = accepted
        #: ``None`` for plain TCP, else the server's ALPN ids in preference order.
        self.alpn_protocols = alpn_protocols


class _MemoryUDPSocket(UnreliableObjectStream[Datagram]):
    """An unconnected in-process UDP socket with a bounded receive queue."""

    def __init__(self, network: MemoryNetworking, address: Address) -> None:
        self._network = network
        self._address = address
        self._inbox: Queue[Datagram] = Queue(network.datagram_queue_size)
        # A socket bound to a wildcard host answers each peer from the
        # address that peer wrote to, as a host's routing would.
        self._reply_from: dict[Address, Address] = {}

    def deliver(self, datagram: Datagram, destination: Address) -> None:
        """Queue a datagram for :meth:`receive`, or drop it if the queue is full.

        :param datagram: the payload and its source.
        :param destination: the address the sender wrote to.
        """
        if self._inbox.closed:
            return
        if self._address[0] in _WILDCARD_HOSTS:
            if len(self._reply_from) >= _MAX_REMEMBERED_PEERS:
                self._reply_from.clear()
            self._reply_from[datagram.address] = destination
        self._inbox.put_nowait(datagram)

    async def receive(self) -> Datagram:
        """Wait for the next datagram.

        :raises anyio.ClosedResourceError: the socket is closed.
        """
        return await self._inbox.get()

    async def send(self, item: Datagram) -> None:
        """Send a datagram to ``item.address``; dropped if nobody is there.

        :raises anyio.ClosedResourceError: the socket is closed.
        """
        await anyio.lowlevel.checkpoint()
        if self._inbox.closed:
            raise anyio.ClosedResourceError
        source = self._reply_from.get(item.address, self._address)
        self._network._deliver(Datagram(item.data, source), item.address)

    async def aclose(self) -> None:
        """Close the socket and free its address."""
        if self._network._udp_sockets.get(self._address) is self:
            del self._network._udp_sockets[self._address]
        self._inbox.close()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The socket's family and local address."""
        address = self._address
        family = address_family(address)
        return {
            SocketAttribute.family: lambda: family,
            SocketAttribute.local_address: lambda: address,
            SocketAttribute.local_port: lambda: address[1],
        }


class MemoryNetworking(ClientNetworking, ServerNetworking):
    """Client and server networking inside one process, with no sockets.

    Make one object and use it on both sides::

        net = MemoryNetworking()
        listener = await net.listen_tcp(("127.0.0.1", 0))
        address = listener.extra(SocketAttribute.local_address)
        stream = await net.connect_tcp(address)

    :param buffer_size: bytes each direction of a TCP connection buffers
        before the writer waits.
    :param backlog: connections a listener holds before ``connect_tcp`` waits.
    :param datagram_queue_size: datagrams a UDP socket (or a QUIC
        connection) queues before further ones are dropped.
    """

    def __init__(
        self,
        *,
        buffer_size: int = 65536,
        backlog: int = 128,
        datagram_queue_size: int = 256,
    ) -> None:
        self.buffer_size = buffer_size
        self.backlog = backlog
        self.datagram_queue_size = datagram_queue_size
        self._ports = itertools.count(49152)
        self._listeners: dict[Address, _TCPEntry] = {}
        self._udp_sockets: dict[Address, _MemoryUDPSocket] = {}

    # -- addresses ---------------------------------------------------------

    def _bind(self, address: Address, taken: Mapping[Address, object]) -> Address:
        host = _normalize_host(address[0])
        if address[1] != 0:
            if (host, address[1]) in taken:
                raise NetworkError(f"address {address!r} is already in use")
            return host, address[1]
        # Bounded: every iteration tries a new port and few are taken.
        while True:
            port = next(self._ports)
            if (host, port) not in taken:
                return host, port

    def _lookup(self, address: Address, table: Mapping[Address, _T]) -> _T | None:
        host, port = _normalize_host(address[0]), address[1]
        for candidate in (host, *_WILDCARD_HOSTS):
            entry = table.get((candidate, port))
            if entry is not None:
                return entry
        return None

    def _client_address(self, remote: Address) -> Address:
        host = "::1" if ":" in remote[0] else "127.0.0.1"
        return host, next(self._ports)

    # -- TCP -----------------------------------------------------------------

    async def connect_tcp(
        self,
        address: Address,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        """Connect to a memory listener.

        :raises hcore_io.ConnectError: no listener at ``address``, it is a
            TLS one, or it closed while we waited for it.
        :raises hcore_io.ConnectTimeout: the listener's backlog stayed full.
        """
        return await self._connect(address, None, timeout)

    async def connect_tcp_tls(
        self,
        address: Address,
        *,
        server_name: str | None = None,
        tls_config: ClientTLSConfig = ClientTLSConfig(),  # noqa: B008
        alpn_protocols: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        """Connect to a memory TLS listener, negotiating ALPN only.

        ``server_name`` and ``tls_config`` are accepted and ignored: nothing
        is verified.

        :raises hcore_io.ConnectError: no listener at ``address``, it is not
            a TLS one, or it closed while we waited for it.
        :raises hcore_io.ConnectTimeout: the listener's backlog stayed full.
        """
        return await self._connect(address, tuple(alpn_protocols), timeout)

    async def _connect(
        self,
        address: Address,
        alpn_offered: tuple[str, ...] | None,
        connect_timeout: float | None,
    ) -> ByteStream:
        await anyio.lowlevel.checkpoint()
        entry = self._lookup(address, self._listeners)
        if entry is None:
            raise ConnectError(f"connection to {address!r} refused")
        if (alpn_offered is None) != (entry.alpn_protocols is None):
            wanted = "TLS" if alpn_offered is not None else "plain TCP"
            raise ConnectError(f"{address!r} is not a {wanted} listener")
        client_extra: dict[Any, Callable[[], Any]] = {}
        server_extra: dict[Any, Callable[[], Any]] = {}
        if alpn_offered is not None and entry.alpn_protocols is not None:
            # RFC 7301 §3.2: the server picks; like OpenSSL, its preference wins.
            selected = next(
                (p for p in entry.alpn_protocols if p in alpn_offered), None
            )
            client_extra = _tls_attributes(selected, server_side=False)
            server_extra = _tls_attributes(selected, server_side=True)
        server_address = (_normalize_host(address[0]), address[1])
        client, server = make_pipe_pair(
            self._client_address(server_address),
            server_address,
            capacity=self.buffer_size,
            client_extra=client_extra,
            server_extra=server_extra,
        )
        try:
            with anyio.fail_after(connect_timeout):
                await entry.accepted.put(server)
        except TimeoutError as exc:
            raise ConnectTimeout(f"connecting to {address!r} timed out") from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ConnectError(f"connection to {address!r} refused") from exc
        return client

    async def listen_tcp(self, address: Address) -> Listener[ByteStream]:
        """Listen for memory connections.

        :raises hcore_io.NetworkError: the address is taken.
        """
        return await self._listen(address, None)

    async def listen_tcp_tls(
        self,
        address: Address,
        *,
        tls_config: ServerTLSConfig,
        alpn_protocols: Sequence[str] = (),
    ) -> Listener[ByteStream]:
        """Listen for memory "TLS" connections; ``tls_config`` is ignored.

        :raises hcore_io.NetworkError: the address is taken.
        """
        return await self._listen(address, tuple(alpn_protocols))

    async def _listen(
        self, address: Address, alpn_protocols: tuple[str, ...] | None
    ) -> Listener[ByteStream]:
        await anyio.lowlevel.checkpoint()
        bound = self._bind(address, self._listeners)
        accepted: Queue[ByteStream] = Queue(self.backlog)
        entry = _TCPEntry(accepted, alpn_protocols)
        self._listeners[bound] = entry

        def forget() -> None:
            if self._listeners.get(bound) is entry:
                del self._listeners[bound]

        return MemoryListener(bound, accepted, forget)

    # -- UDP and QUIC --------------------------------------------------------

    def _deliver(self, datagram: Datagram, destination: Address) -> None:
        target = self._lookup(destination, self._udp_sockets)
        if target is not None:
            normalized = (_normalize_host(destination[0]), destination[1])
            target.deliver(datagram, normalized)

    def _open_udp(self, address: Address) -> _MemoryUDPSocket:
        bound = self._bind(address, self._udp_sockets)
        udp_socket = _MemoryUDPSocket(self, bound)
        self._udp_sockets[bound] = udp_socket
        return udp_socket

    async def connect_udp(self, address: Address) -> DatagramStream:
        """Open a memory UDP socket towards ``address``.

        The remote address is ``address`` with ``"localhost"`` read as
        ``127.0.0.1``; nothing needs to listen there yet.
        """
        await anyio.lowlevel.checkpoint()
        remote = (_normalize_host(address[0]), address[1])
        local_host = "::1" if ":" in remote[0] else "127.0.0.1"
        return PeerDatagramStream(self._open_udp((local_host, 0)), remote)

    async def listen_quic(
        self,
        address: Address,
        *,
        quic_connection_id_length: int,
        quic_supported_versions: Sequence[int],
    ) -> Listener[QUICStream]:
        """Listen for QUIC on a memory UDP socket.

        :raises hcore_io.NetworkError: the address is taken.
        """
        await anyio.lowlevel.checkpoint()
        return QUICListener(
            self._open_udp(address),
            connection_id_length=quic_connection_id_length,
            supported_versions=quic_supported_versions,
            queue_size=self.datagram_queue_size,
        )
