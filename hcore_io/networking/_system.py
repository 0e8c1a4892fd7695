"""Networking over the operating system's sockets, through AnyIO.

:class:`SystemNetworking` opens TCP connections (with TLS through AnyIO's
``TLSStream``), UDP sockets for QUIC clients, and TCP and QUIC listeners.
It runs on every AnyIO backend (asyncio and Trio).

Errors: connecting and listening translate ``OSError``, ``ssl.SSLError``
and AnyIO's errors into :mod:`hcore_io`'s (:exc:`~hcore_io.ConnectError`,
:exc:`~hcore_io.ConnectTimeout`, :exc:`~hcore_io.NetworkError` for a
listener that cannot be set up).  The streams returned are AnyIO streams
and keep AnyIO's semantics, which the connection layer relies on:
``receive`` raises :exc:`anyio.EndOfStream` at end of stream,
:exc:`anyio.BrokenResourceError` when the connection is reset or fails, and
:exc:`anyio.ClosedResourceError` after ``aclose``; ``send`` raises the last
two.  TLS streams are made with ``standard_compatible=False`` (an EOF
without ``close_notify`` is a plain end of stream, as HTTP wants), and like
every AnyIO ``TLSStream`` they do not support ``send_eof``; a TLS failure
after the handshake (``ssl.SSLError``) is raised as
:exc:`anyio.BrokenResourceError`.

Everything but the three socket primitives below is shared with
:class:`~hcore_io.networking.EpollNetworking`, in
:mod:`hcore_io.networking._sockets`.
"""

from __future__ import annotations

import socket

import anyio
from anyio.abc import ByteStream, SocketListener, UnreliableObjectStream

from hcore import Datagram
from hcore_io.networking._datagrams import UDPSocketStream
from hcore_io.networking._sockets import SocketNetworking

__all__ = ("SystemNetworking",)


class SystemNetworking(SocketNetworking):
    """TCP, TLS, UDP and QUIC listeners on real sockets, through AnyIO.

    :param tls_handshake_timeout: seconds a client of a TLS listener gets to
        complete its handshake before it is dropped.
    :param quic_queue_size: datagrams queued per QUIC connection of a
        listener before more are dropped.
    :param reuse_port: bind listening sockets with ``SO_REUSEPORT``, so that
        several processes can listen on the same port.
    :raises ValueError: ``reuse_port`` on a system without
        ``SO_REUSEPORT``.
    """

    async def _open_tcp(self, host: str, port: int) -> ByteStream:
        # AnyIO resolves the name and runs Happy Eyeballs (RFC 8305).
        return await anyio.connect_tcp(host, port)

    async def _open_tcp_listeners(
        self, host: str | None, port: int, *, reuse_port: bool
    ) -> list[SocketListener]:
        multi = await anyio.create_tcp_listener(
            local_host=host, local_port=port, reuse_port=reuse_port
        )
        listeners: list[SocketListener] = []
        for listener in multi.listeners:
            # create_tcp_listener makes socket listeners only.
            assert isinstance(listener, SocketListener)
            listeners.append(listener)
        return listeners

    async def _open_udp(
        self,
        family: socket.AddressFamily,
        host: str | None,
        port: int,
        *,
        reuse_port: bool = False,
    ) -> UnreliableObjectStream[Datagram]:
        udp_socket = await anyio.create_udp_socket(
            socket.AF_INET6
            if family == socket.AF_INET6
            else socket.AF_INET
            if family == socket.AF_INET
            else socket.AF_UNSPEC,
            local_host=host,
            local_port=port,
            reuse_port=reuse_port,
        )
        return UDPSocketStream(udp_socket)
