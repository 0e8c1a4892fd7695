"""Networking on raw non-blocking sockets and one epoll per event loop.

:class:`EpollNetworking` (Linux only) offers everything
:class:`~hcore_io.networking.SystemNetworking` offers, with the same
errors, timeouts, TLS and listeners (both are built on
:mod:`hcore_io.networking._sockets`), but moves the bytes itself: see
:mod:`hcore_io.networking._epoll_poller` and
:mod:`hcore_io.networking._epoll_hosted` for the epoll, and
:mod:`hcore_io.networking._epoll_streams` and
:mod:`hcore_io.networking._epoll_udp` for the streams.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketListener, UnreliableObjectStream

from hcore import Datagram
from hcore_io.networking._epoll_hosted import current_poller
from hcore_io.networking._epoll_poller import epoll_available
from hcore_io.networking._epoll_streams import (
    EpollSocketStream,
    bind_tcp_listeners,
    connect_tcp_socket,
)
from hcore_io.networking._epoll_udp import bind_udp_socket
from hcore_io.networking._sockets import SocketNetworking

__all__ = ("EpollNetworking",)

# RFC 8305 §5: the "Connection Attempt Delay" before racing the next address.
_CONNECTION_ATTEMPT_DELAY = 0.25

_Target = tuple[socket.AddressFamily, tuple[Any, ...]]


def _interleave(targets: Sequence[_Target]) -> list[_Target]:
    # RFC 8305 §4: alternate the families, starting with the first one given.
    if not targets:
        return []
    first = [t for t in targets if t[0] == targets[0][0]]
    other = [t for t in targets if t[0] != targets[0][0]]
    ordered: list[_Target] = []
    for index in range(max(len(first), len(other))):
        ordered.extend(group[index] for group in (first, other) if index < len(group))
    return ordered


class EpollNetworking(SocketNetworking):
    """TCP, TLS, UDP and QUIC listeners on raw sockets and epoll (Linux).

    Every socket is registered once with an edge-triggered ``select.epoll``
    shared by the event loop, and reads and writes are tried before any
    wait; only the epoll descriptor is registered with the event loop, so
    it runs on asyncio and on Trio.  Streams are AnyIO streams with AnyIO's
    semantics and typed attributes, as those of :class:`SystemNetworking`.

    :param tls_handshake_timeout: seconds a client of a TLS listener gets to
        complete its handshake before it is dropped.
    :param quic_queue_size: datagrams queued per QUIC connection of a
        listener before more are dropped.
    :param reuse_port: bind listening sockets with ``SO_REUSEPORT``, so that
        several processes can listen on the same port.
    :raises RuntimeError: the system has no epoll (it is not Linux).
    """

    def __init__(
        self,
        *,
        tls_handshake_timeout: float = 10.0,
        quic_queue_size: int = 256,
        reuse_port: bool = False,
    ) -> None:
        if not epoll_available():
            raise RuntimeError("EpollNetworking needs Linux's epoll")
        super().__init__(
            tls_handshake_timeout=tls_handshake_timeout,
            quic_queue_size=quic_queue_size,
            reuse_port=reuse_port,
        )

    async def _open_tcp(self, host: str, port: int) -> ByteStream:
        poller = current_poller()
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            targets = _interleave(
                [(socket.AddressFamily(info[0]), info[4]) for info in infos]
            )
        else:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            targets = [(family, (host, port))]
        if not targets:
            raise OSError(f"{host!r} resolved to no address")
        if len(targets) == 1:
            return await connect_tcp_socket(*targets[0], poller)
        # RFC 8305 §5: start the next attempt when the previous one fails or
        # after a delay; the first connection made wins, the rest are closed.
        winner: list[EpollSocketStream] = []
        errors: list[OSError] = []

        async def attempt(target: _Target, failed: anyio.Event) -> None:
            try:
                stream = await connect_tcp_socket(*target, poller)
            except OSError as exc:
                errors.append(exc)
                failed.set()
                return
            if winner:
                await stream.aclose()
            else:
                winner.append(stream)
                task_group.cancel_scope.cancel()

        try:
            async with anyio.create_task_group() as task_group:
                for target in targets:
                    failed = anyio.Event()
                    task_group.start_soon(attempt, target, failed)
                    with anyio.move_on_after(_CONNECTION_ATTEMPT_DELAY):
                        await failed.wait()
        except BaseException:
            # Cancelled from outside after a connection was made.
            for stream in winner:
                await anyio.aclose_forcefully(stream)
            raise
        if winner:
            return winner[0]
        raise OSError(f"all connection attempts failed: {errors}") from (
            errors[-1] if errors else None
        )

    async def _open_tcp_listeners(
        self, host: str | None, port: int, *, reuse_port: bool
    ) -> list[SocketListener]:
        return await bind_tcp_listeners(
            host, port, current_poller(), reuse_port=reuse_port
        )

    async def _open_udp(
        self,
        family: socket.AddressFamily,
        host: str | None,
        port: int,
        *,
        reuse_port: bool = False,
    ) -> UnreliableObjectStream[Datagram]:
        return await bind_udp_socket(
            family, host, port, current_poller(), reuse_port=reuse_port
        )
