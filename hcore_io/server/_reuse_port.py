"""SystemNetworking whose listeners share their ports (``SO_REUSEPORT``).

Several processes serving the same endpoints each bind their own listening
sockets with ``SO_REUSEPORT``; the kernel spreads new TCP connections, and
UDP datagrams by their address 4-tuple (so a QUIC connection stays with one
process), between them.  Linux and the BSDs only.
"""

from __future__ import annotations

import socket

import anyio
from anyio.abc import SocketListener, UnreliableObjectStream

from hcore import Datagram
from hcore_io.networking import SystemNetworking
from hcore_io.networking._datagrams import UDPSocketStream

__all__ = ("ReusePortNetworking",)


class ReusePortNetworking(SystemNetworking):
    """:class:`~hcore_io.networking.SystemNetworking` binding with ``SO_REUSEPORT``.

    :raises NotImplementedError: (when listening) on a platform without
        ``SO_REUSEPORT``.
    """

    async def _open_tcp_listeners(
        self, host: str | None, port: int
    ) -> list[SocketListener]:
        multi = await anyio.create_tcp_listener(
            local_host=host, local_port=port, reuse_port=True
        )
        listeners: list[SocketListener] = []
        for listener in multi.listeners:
            assert isinstance(listener, SocketListener)
            listeners.append(listener)
        return listeners

    async def _open_udp(
        self, family: socket.AddressFamily, host: str | None, port: int
    ) -> UnreliableObjectStream[Datagram]:
        udp_socket = await anyio.create_udp_socket(
            socket.AF_INET6
            if family == socket.AF_INET6
            else socket.AF_INET
            if family == socket.AF_INET
            else socket.AF_UNSPEC,
            local_host=host,
            local_port=port,
            reuse_port=True,
        )
        return UDPSocketStream(udp_socket)
