"""Datagram streams shared by the backends: a UDP socket and a peer's view of it.

Theory of operation: every backend provides an *unconnected* datagram
socket as an ``UnreliableObjectStream[Datagram]`` (``send`` goes to the
datagram's address, ``receive`` tells the source).  :class:`PeerDatagramStream`
turns one into a client's path to one peer: it sends everything to that
peer and drops whatever arrives from anyone else.  An unconnected socket is
used on purpose: a connected UDP socket reports ICMP errors (port
unreachable) on the next receive, while QUIC expects to ride those out with
its own timers (RFC 9000 §14.2 treats ICMP as advisory).
"""

from __future__ import annotations

import logging
import socket
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import SocketAttribute, UDPSocket, UnreliableObjectStream

from hcore import Address, Datagram

__all__ = (
    "BatchDatagramStream",
    "PeerDatagramStream",
    "UDPSocketStream",
    "normalize_address",
    "receive_datagrams",
)

_logger = logging.getLogger("hcore_io.networking")


def normalize_address(address: tuple[Any, ...]) -> Address:
    """Reduce a socket address to ``(host, port)``.

    IPv6 socket addresses carry flow info and a scope id; a non-zero scope
    id is kept in the host as ``host%scope`` the way AnyIO writes it.

    :param address: a socket address as the OS or AnyIO gives it.
    :return: the ``(host, port)`` pair.
    """
    host, port = str(address[0]), int(address[1])
    if len(address) == 4 and address[3] and "%" not in host:
        host = f"{host}%{address[3]}"
    return host, port


class BatchDatagramStream(UnreliableObjectStream[Datagram]):
    """A datagram socket that hands over every datagram one wake-up brought.

    A QUIC listener reads its socket through :func:`receive_datagrams`, so a
    backend that drains its socket in one go (the epoll one) passes the whole
    batch on without a task switch per datagram.
    """

    @abstractmethod
    async def receive_batch(self) -> Sequence[Datagram]:
        """Wait for datagrams and take all that are ready.

        :return: one datagram or more, in arrival order.
        :raises anyio.ClosedResourceError: the socket is closed.
        """
        raise NotImplementedError


async def receive_datagrams(
    stream: UnreliableObjectStream[Datagram],
) -> Sequence[Datagram]:
    """Receive the next datagrams: a batch if the stream offers one.

    :param stream: a datagram socket.
    :return: one datagram or more.
    """
    if isinstance(stream, BatchDatagramStream):
        return await stream.receive_batch()
    return (await stream.receive(),)


class UDPSocketStream(UnreliableObjectStream[Datagram]):
    """An AnyIO UDP socket seen as a stream of :class:`hcore.Datagram`.

    Sends are serialised (several QUIC connections share one socket) and a
    send the OS refuses (``OSError``: unreachable network, full buffer) drops
    the datagram, as the network itself might.  ``receive`` keeps AnyIO's
    semantics: :exc:`anyio.ClosedResourceError` once closed.
    """

    def __init__(self, udp_socket: UDPSocket) -> None:
        self._socket = udp_socket
        self._send_lock = anyio.Lock()

    async def receive(self) -> Datagram:
        """Wait for the next datagram.

        :return: the payload and its source address.
        """
        data, address = await self._socket.receive()
        return Datagram(data, normalize_address(address))

    async def send(self, item: Datagram) -> None:
        """Send one datagram to ``item.address``; dropped if the OS refuses it."""
        async with self._send_lock:
            try:
                await self._socket.sendto(item.data, *item.address)
            except OSError as exc:
                _logger.debug("UDP datagram to %s dropped: %s", item.address, exc)
            except anyio.BrokenResourceError as exc:
                # AnyIO on Trio wraps the OSError of one refused datagram.
                if not isinstance(exc.__cause__, OSError):
                    raise
                _logger.debug(
                    "UDP datagram to %s dropped: %s", item.address, exc.__cause__
                )

    async def aclose(self) -> None:
        """Close the socket."""
        await self._socket.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The socket's attributes (``local_address`` normalised)."""
        attributes = dict(self._socket.extra_attributes)
        local_address = self._socket.extra(SocketAttribute.local_address)
        assert isinstance(local_address, tuple)  # an IP socket, never AF_UNIX
        local = normalize_address(local_address)
        attributes[SocketAttribute.local_address] = lambda: local
        return attributes


class PeerDatagramStream(UnreliableObjectStream[Datagram]):
    """A datagram socket restricted to one peer.

    Every datagram sent goes to the peer, whatever its ``address`` says;
    datagrams from any other source are dropped.  Received datagrams carry
    the peer's address.  ``SocketAttribute.remote_address`` is the peer.
    """

    def __init__(
        self, udp_socket: UnreliableObjectStream[Datagram], remote_address: Address
    ) -> None:
        self._socket = udp_socket
        self._remote_address = remote_address

    async def receive(self) -> Datagram:
        """Wait for the next datagram from the peer."""
        # Bounded by the traffic of strangers, which we must drop anyway.
        while True:
            datagram = await self._socket.receive()
            if datagram.address == self._remote_address:
                return datagram

    async def send(self, item: Datagram) -> None:
        """Send ``item.data`` to the peer."""
        await self._socket.send(Datagram(item.data, self._remote_address))

    async def aclose(self) -> None:
        """Close the socket."""
        await self._socket.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The socket's attributes plus the peer's address."""
        remote = self._remote_address
        family = socket.AF_INET6 if ":" in remote[0] else socket.AF_INET
        return {
            **self._socket.extra_attributes,
            SocketAttribute.family: lambda: family,
            SocketAttribute.remote_address: lambda: remote,
            SocketAttribute.remote_port: lambda: remote[1],
        }
