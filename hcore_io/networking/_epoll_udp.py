"""The UDP socket of :class:`~hcore_io.networking.EpollNetworking`.

Theory of operation: one wake-up drains the socket.  When its inbox is
empty, :class:`EpollUDPSocket` calls ``recvfrom_into`` until the kernel says
``EAGAIN`` (or a batch limit is reached, so one busy socket cannot hold the
event loop), and keeps the datagrams in arrival order.  ``receive`` hands
them out one at a time; :meth:`EpollUDPSocket.receive_batch` hands the
whole batch on at once, which is how the QUIC listener reads (see
:func:`~hcore_io.networking._datagrams.receive_datagrams`).  Datagrams in the
inbox stay there if a receive is cancelled.

Sends are tried at once; only ``EAGAIN`` (a full send buffer) waits, one
sender at a time.  A datagram the system refuses otherwise (unreachable
network, broadcast not allowed) is dropped, as the network itself might,
which is what the AnyIO-based socket does too.  An error reported on
receive (an ICMP message queued on the socket) is advisory (RFC 9000
§14.2): it ends the batch and is logged, never raised.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import SocketAttribute

from hcore import Datagram
from hcore_io.networking._datagrams import BatchDatagramStream, normalize_address
from hcore_io.networking._epoll_poller import Poller

__all__ = ("EpollUDPSocket", "bind_udp_socket")

_logger = logging.getLogger("hcore_io.networking")

# Datagrams read per wake-up at most; the rest waits for the next receive.
_MAX_BATCH = 256
_MAX_DATAGRAM = 65535


class EpollUDPSocket(BatchDatagramStream):
    """An unconnected, non-blocking UDP socket driven by the loop's epoll.

    :param sock: the bound socket; the stream owns it.
    :param poller: the running event loop's poller.
    """

    def __init__(self, sock: socket.socket, poller: Poller) -> None:
        sock.setblocking(False)
        self._socket = sock
        self._poller = poller
        self._registration = poller.register(sock)
        self._inbox: deque[Datagram] = deque()
        self._receiving = False
        self._send_lock = anyio.Lock()
        self._closed = False
        self._local = normalize_address(sock.getsockname())

    def _drain(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        buffer = self._poller.buffer
        size = min(len(buffer), _MAX_DATAGRAM)
        inbox = self._inbox
        # Bounded by _MAX_BATCH.
        for _ in range(_MAX_BATCH):
            try:
                count, address = self._socket.recvfrom_into(buffer, size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # A queued ICMP error (ECONNREFUSED after a datagram to a
                # closed port) is reported once and consumed; datagrams
                # queued behind it must still be read now, as no new edge
                # may come for them.
                _logger.debug("UDP receive error ignored: %s", exc)
                continue
            inbox.append(Datagram(bytes(buffer[:count]), normalize_address(address)))

    async def _fill(self) -> None:
        # Ensures the inbox holds a datagram; a checkpoint either way.
        if self._receiving:
            raise anyio.BusyResourceError("reading from")
        self._receiving = True
        try:
            if self._inbox:
                await anyio.lowlevel.checkpoint()
                return
            self._drain()
            if self._inbox:
                # The batch stays in the inbox if this checkpoint is cancelled.
                await anyio.lowlevel.checkpoint()
                return
            # Each round follows an edge (or a spurious wake-up).
            while not self._inbox:
                await self._poller.wait_readable(self._registration)
                self._drain()
        finally:
            self._receiving = False
        if self._closed:
            raise anyio.ClosedResourceError

    async def receive(self) -> Datagram:
        """Receive the next datagram.

        :return: the payload and its source address.
        :raises anyio.ClosedResourceError: the socket is closed.
        """
        await self._fill()
        return self._inbox.popleft()

    async def receive_batch(self) -> Sequence[Datagram]:
        """Receive every datagram that is ready (one at least).

        :raises anyio.ClosedResourceError: the socket is closed.
        """
        await self._fill()
        batch = list(self._inbox)
        self._inbox.clear()
        return batch

    def _sendto(self, item: Datagram) -> bool:
        # One attempt; False means EAGAIN.
        if self._closed:
            raise anyio.ClosedResourceError
        host, port = item.address
        try:
            self._socket.sendto(item.data, (host, port))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            _logger.debug("UDP datagram to %s dropped: %s", item.address, exc)
        return True

    async def send(self, item: Datagram) -> None:
        """Send one datagram to ``item.address``; dropped if the OS refuses it.

        :raises anyio.ClosedResourceError: the socket is closed.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        if not self._send_lock.locked() and self._sendto(item):
            return
        async with self._send_lock:
            # Each round follows a writing edge.
            while not self._sendto(item):
                await self._poller.wait_writable(self._registration)

    async def aclose(self) -> None:
        """Unregister from epoll, then close the socket."""
        if not self._closed:
            self._closed = True
            self._inbox.clear()
            self._poller.unregister(self._registration)
            self._socket.close()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """Family, local address and port, and the raw socket."""
        local = self._local
        family = self._socket.family
        return {
            SocketAttribute.family: lambda: family,
            SocketAttribute.local_address: lambda: local,
            SocketAttribute.local_port: lambda: local[1],
            SocketAttribute.raw_socket: lambda: self._socket,
        }


async def bind_udp_socket(
    family: socket.AddressFamily,
    host: str | None,
    port: int,
    poller: Poller,
    *,
    reuse_port: bool = False,
) -> EpollUDPSocket:
    """Bind a UDP socket as ``anyio.create_udp_socket`` does.

    :param family: ``AF_INET`` or ``AF_INET6``, or ``AF_UNSPEC`` with a host.
    :param host: the local host; ``None`` binds the family's wildcard.
    :param port: the local port; 0 lets the system pick one.
    :param reuse_port: set ``SO_REUSEPORT`` before binding.
    :raises OSError: the name cannot be resolved or the address bound.
    """
    sockaddr: tuple[Any, ...]
    if host:
        infos = await anyio.getaddrinfo(
            host,
            port,
            family=family,
            type=socket.SOCK_DGRAM,
            flags=socket.AI_PASSIVE | socket.AI_ADDRCONFIG,
        )
        family, *_, sockaddr = infos[0]
    elif family == socket.AF_INET6:
        sockaddr = ("::", port)
    else:
        family, sockaddr = socket.AF_INET, ("0.0.0.0", port)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
        return EpollUDPSocket(sock, poller)
    except BaseException:
        sock.close()
        raise
