"""TCP streams and listeners of :class:`~hcore_io.networking.EpollNetworking`.

Theory of operation: each socket is non-blocking and registered once with
the event loop's :class:`~hcore_io.networking._epoll_poller.Poller`.  Every
operation first makes the system call and waits for an edge only after
``EAGAIN``; only the unsent rest of a write waits for writability.  The
exception is a receive after a read that drained the socket (a short read):
it waits for the next reading edge first, since a read would only meet
``EAGAIN``.

The streams keep AnyIO's semantics so that TLS layers over them and the
connection layer handles them as it handles AnyIO's own sockets:

- ``receive`` and ``send`` check for cancellation before they touch the
  socket.  Bytes read without waiting are parked on the stream across the
  checkpoint that follows, so a receive cancelled there returns them on the
  next call: a cancelled receive never loses data.  After a wait the bytes
  are read and returned with no further await.
- Yielding to the event loop costs a loop iteration (on asyncio a
  ``select`` call too), so an operation that completes at once yields only
  if the stream's previous operation did not: a request-response exchange
  (receive, then send) yields once, and no task runs more than two
  operations on a stream without letting others run.
- ``EOF`` raises :exc:`anyio.EndOfStream`; ``ECONNRESET``, ``EPIPE`` and the
  other socket errors raise :exc:`anyio.BrokenResourceError` (the
  ``OSError`` as its cause), and keep raising it; a closed stream raises
  :exc:`anyio.ClosedResourceError`, also in a task blocked on it when
  another task closes it; two concurrent receives (or sends) raise
  :exc:`anyio.BusyResourceError`.
- ``send`` sends everything before it returns; where it yields, it does
  so before sending, so a cancelled send has sent nothing (one cancelled
  while waiting for writability has sent a part, as on every stream).
  Unlike AnyIO's streams, an interrupted send tells what it left unsent
  (``unsent``), so that the connection layer can finish it.  ``send_nowait``
  sends what the socket takes at once, with no checkpoint (a request head).
- ``aclose`` unregisters the socket from epoll before closing the
  descriptor (see the poller's theory of operation).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import SocketAttribute, SocketListener, SocketStream

from hcore_io.networking._epoll_poller import Poller, Registration

__all__ = (
    "EpollSocketListener",
    "EpollSocketStream",
    "bind_tcp_listeners",
    "connect_tcp_socket",
    "socket_address",
)

# Receives read into the poller's shared buffer and copy out what came, so
# that a receive(262144) returning a few hundred bytes allocates only those:
# a recv() into a bytes object of the size asked for allocates it whole and
# shrinks it, which cost ~80 us per read here (Linux 6.18 in a Firecracker
# VM, glibc) against ~6 us.
# Once a receive asking for this much or more filled the buffer (a bulk
# transfer), the next ones read straight into a bytes object of their own
# (one copy less) for as long as they come full.
_DIRECT_READ = 256 * 1024
# What anyio.create_tcp_listener asks for; the kernel caps it (somaxconn).
_BACKLOG = 65535


def socket_address(sockaddr: Any) -> tuple[str, int]:
    """A socket address as AnyIO reports it: ``(host, port)``, ``host%scope``."""
    host, port = str(sockaddr[0]), int(sockaddr[1])
    if len(sockaddr) == 4 and sockaddr[3]:
        host = f"{host.split('%')[0]}%{sockaddr[3]}"
    return host, port


# The local addresses of accepted sockets, one tuple for all the streams
# with the same (a listener's connections all have their listener's):
# every stream keeps its addresses, and a tuple, its host string and its
# port number cost 146 bytes.  Bounded: beyond it, streams keep their own.
_LOCAL_ADDRESSES: dict[tuple[str, int], tuple[str, int]] = {}
_LOCAL_ADDRESSES_MAX = 64


def _shared_local(address: tuple[str, int]) -> tuple[str, int]:
    shared = _LOCAL_ADDRESSES.get(address)
    if shared is not None:
        return shared
    if len(_LOCAL_ADDRESSES) < _LOCAL_ADDRESSES_MAX:
        _LOCAL_ADDRESSES[address] = address
    return address


class EpollSocketStream(SocketStream):
    """A connected, non-blocking TCP socket driven by the loop's epoll.

    :param sock: the connected socket; the stream owns it.
    :param poller: the running event loop's poller.
    """

    def __init__(self, sock: socket.socket, poller: Poller) -> None:
        sock.setblocking(False)
        self._socket = sock
        self._poller = poller
        self._registration: Registration = poller.register(sock)
        # Bytes read but not yet returned (a cancelled receive's).
        self._pending = b""
        self._receiving = False
        self._sending = False
        self._closed = False
        self._error: OSError | None = None
        #: What the last :meth:`send` left unsent when it was interrupted (by
        #: a cancellation, or an error): its whole item if it was interrupted
        #: before sending, else the rest.  Only meaningful right after
        #: ``send`` raised; the connection layer finishes a cancelled write
        #: with it.
        self.unsent: bytes | memoryview = b""
        # The last operation on the stream let other tasks run (see above).
        self._yielded = False
        # Reads come full: read straight into a bytes object (see _DIRECT_READ).
        self._bulk = False
        self._addresses: tuple[tuple[str, int], tuple[str, int]] | None = None

    @property
    def _raw_socket(self) -> socket.socket:
        return self._socket

    def _broken(self, exc: OSError) -> anyio.BrokenResourceError:
        self._error = exc
        error = anyio.BrokenResourceError(f"connection failed: {exc}")
        error.__cause__ = exc
        return error

    def _recv(self, max_bytes: int) -> bytes | None:
        # One attempt; None means EAGAIN.
        if self._closed:
            raise anyio.ClosedResourceError
        if self._error is not None:
            raise self._broken(self._error)
        try:
            if self._bulk and max_bytes >= _DIRECT_READ:
                data = self._socket.recv(max_bytes)
                self._bulk = len(data) == max_bytes
                if data and not self._bulk:
                    # A short read drained the socket (see receive); the end
                    # of the stream is reported by every read, so is not.
                    self._registration.drained()
                return data
            buffer = self._poller.buffer
            size = min(max_bytes, len(buffer))
            count = self._socket.recv_into(buffer, size)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise self._broken(exc) from exc
        if count < size:
            if count:
                self._registration.drained()
            self._bulk = False
        else:
            self._bulk = max_bytes >= _DIRECT_READ
        return bytes(buffer[:count])

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive up to ``max_bytes`` bytes.

        :raises anyio.EndOfStream: the peer closed its side.
        :raises anyio.BrokenResourceError: the connection was reset or failed.
        :raises anyio.ClosedResourceError: the stream is closed.
        :raises anyio.BusyResourceError: another task is receiving.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        if self._receiving:
            raise anyio.BusyResourceError("reading from")
        self._receiving = True
        try:
            if not (
                self._registration.readable
                or self._pending
                or self._closed
                or self._error is not None
            ):
                # The last read drained the socket and no edge came since:
                # a read now would only meet EAGAIN, so wait first.
                data = None
                while data is None:
                    await self._poller.wait_readable(self._registration)
                    data = self._recv(max_bytes)
                self._yielded = True
                return self._received(data, max_bytes)
            skip_yield = self._yielded and not self._pending
            if skip_yield and self._poller.cancel_pending():
                # Raises before anything is read: nothing can be lost.
                await anyio.lowlevel.checkpoint_if_cancelled()
            data = self._pending or self._recv(max_bytes)
            if data is None:
                # Each round follows an edge (or a spurious wake-up).
                while data is None:
                    await self._poller.wait_readable(self._registration)
                    data = self._recv(max_bytes)
                self._yielded = True
            elif skip_yield:
                self._yielded = False
            else:
                # Park the bytes over the checkpoint: if it raises a
                # cancellation, the next receive returns them.
                self._pending = data
                await anyio.lowlevel.checkpoint()
                self._pending = b""
                self._yielded = True
        finally:
            self._receiving = False
        return self._received(data, max_bytes)

    def _received(self, data: bytes, max_bytes: int) -> bytes:
        if not data:
            raise anyio.EndOfStream
        if len(data) > max_bytes:
            self._pending = data[max_bytes:]
            data = data[:max_bytes]
        return data

    def _send(self, data: bytes | memoryview) -> int:
        # One attempt; 0 means EAGAIN.
        if self._closed:
            raise anyio.ClosedResourceError
        if self._error is not None:
            raise self._broken(self._error)
        try:
            return self._socket.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            raise self._broken(exc) from exc

    def send_nowait(self, item: bytes) -> int:
        """Send what the socket takes of ``item`` at once (no checkpoint, no wait).

        :return: how many bytes the socket took (``0``: it would block).
        :raises anyio.BrokenResourceError: the connection was reset or failed.
        :raises anyio.ClosedResourceError: the stream is closed.
        :raises anyio.BusyResourceError: another task is sending.
        """
        if self._sending:
            raise anyio.BusyResourceError("writing to")
        return self._send(item)

    async def send(self, item: bytes) -> None:
        """Send all of ``item``.

        :raises anyio.BrokenResourceError: the connection was reset or failed
            (``EPIPE`` included).
        :raises anyio.ClosedResourceError: the stream is closed.
        :raises anyio.BusyResourceError: another task is sending.
        """
        if self._sending:
            raise anyio.BusyResourceError("writing to")
        self._sending = True
        rest: bytes | memoryview = item
        try:
            # Either way cancellation is checked before anything is sent.
            if self._yielded:
                if self._poller.cancel_pending():
                    await anyio.lowlevel.checkpoint_if_cancelled()
                self._yielded = False
            else:
                await anyio.lowlevel.checkpoint()
                self._yielded = True
            sent = self._send(item)
            if sent == len(item):
                return
            rest = memoryview(item)[sent:]
            # Each round follows an edge; bounded by the bytes left.
            while rest:
                await self._poller.wait_writable(self._registration)
                rest = rest[self._send(rest) :]
            self._yielded = True
        except BaseException:
            # Free on the way that completes; read by the connection layer.
            self.unsent = rest
            raise
        finally:
            self._sending = False

    async def wait_connected(self) -> None:
        """Wait for a non-blocking ``connect`` in progress to finish.

        :raises OSError: the connection was refused or failed.
        """
        # Each round follows a writing edge; the kernel gives one at the end.
        while True:
            await self._poller.wait_writable(self._registration)
            error = self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error))
            try:
                self._socket.getpeername()
            except OSError as exc:
                if exc.errno != errno.ENOTCONN:
                    raise
                continue
            return

    async def send_eof(self) -> None:
        """Shut down the sending side (a FIN); receiving goes on."""
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            self._socket.shutdown(socket.SHUT_WR)
        except OSError:
            # Already reset or shut down, as AnyIO's asyncio streams ignore.
            pass
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Unregister from epoll, then close the socket."""
        if not self._closed:
            self._closed = True
            self._poller.unregister(self._registration)
            self._socket.close()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """Family, addresses and ports (read once), and the raw socket."""
        if self._addresses is None:
            try:
                local = _shared_local(socket_address(self._socket.getsockname()))
                remote = socket_address(self._socket.getpeername())
            except OSError:
                # Closed, or reset before anybody asked: nothing to tell.
                return {
                    SocketAttribute.family: lambda: self._socket.family,
                    SocketAttribute.raw_socket: lambda: self._socket,
                }
            self._addresses = (local, remote)
        local, remote = self._addresses
        family = self._socket.family
        return {
            SocketAttribute.family: lambda: family,
            SocketAttribute.local_address: lambda: local,
            SocketAttribute.local_port: lambda: local[1],
            SocketAttribute.remote_address: lambda: remote,
            SocketAttribute.remote_port: lambda: remote[1],
            SocketAttribute.raw_socket: lambda: self._socket,
        }


class EpollSocketListener(SocketListener):
    """A listening, non-blocking TCP socket driven by the loop's epoll.

    :param sock: the bound, listening socket; the listener owns it.
    :param poller: the running event loop's poller.
    """

    def __init__(self, sock: socket.socket, poller: Poller) -> None:
        sock.setblocking(False)
        self._socket = sock
        self._poller = poller
        self._registration = poller.register(sock)
        self._closed = False

    @property
    def _raw_socket(self) -> socket.socket:
        return self._socket

    async def accept(self) -> SocketStream:
        """Accept the next connection.

        :raises anyio.ClosedResourceError: the listener is closed.
        :raises OSError: accepting failed (``EMFILE`` and friends).
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        waited = False
        # Each round follows an edge, or a connection aborted before accept.
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                sock, _ = self._socket.accept()
            except (BlockingIOError, InterruptedError):
                await self._poller.wait_readable(self._registration)
                waited = True
                continue
            except ConnectionAbortedError:
                continue
            try:
                stream = EpollSocketStream(sock, self._poller)
            except BaseException:
                sock.close()
                raise
            if not waited:
                # Shielded: a cancellation here would leak the connection.
                await anyio.lowlevel.cancel_shielded_checkpoint()
            return stream

    async def aclose(self) -> None:
        """Stop listening; a pending :meth:`accept` raises ClosedResourceError."""
        if not self._closed:
            self._closed = True
            self._poller.unregister(self._registration)
            self._socket.close()
        await anyio.lowlevel.checkpoint()


def _listening_socket(
    family: socket.AddressFamily,
    sockaddr: tuple[Any, ...],
    *,
    v6only: bool = True,
    reuse_port: bool = False,
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
        sock.listen(_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


async def bind_tcp_listeners(
    host: str | None, port: int, poller: Poller, *, reuse_port: bool = False
) -> list[SocketListener]:
    """Bind listening sockets the way ``anyio.create_tcp_listener`` does.

    ``None`` binds one dual-stack IPv6 socket where the system has one;
    a name binds each of its addresses, on one port.

    :param reuse_port: set ``SO_REUSEPORT`` on each socket.
    :raises OSError: an address cannot be bound.
    """
    if host is None and socket.has_dualstack_ipv6():
        sock = _listening_socket(
            socket.AF_INET6, ("::", port), v6only=False, reuse_port=reuse_port
        )
        return [EpollSocketListener(sock, poller)]
    infos = await anyio.getaddrinfo(
        host, port, flags=socket.AI_PASSIVE | socket.AI_ADDRCONFIG
    )
    sockaddrs = sorted(
        {(family, sockaddr) for family, kind, *_, sockaddr in infos if kind == 1}
    )
    sockets: list[socket.socket] = []
    try:
        bound_port = port
        for family, sockaddr in sockaddrs:
            address = (sockaddr[0], bound_port, *sockaddr[2:])
            sock = _listening_socket(
                socket.AddressFamily(family), address, reuse_port=reuse_port
            )
            sockets.append(sock)
            # Port 0: every address listens on the port the first one got.
            bound_port = sock.getsockname()[1]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return [EpollSocketListener(sock, poller) for sock in sockets]


async def connect_tcp_socket(
    family: socket.AddressFamily, sockaddr: tuple[Any, ...], poller: Poller
) -> EpollSocketStream:
    """Connect one TCP socket to one address.

    :raises OSError: the connection was refused or failed.
    """
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        error = sock.connect_ex(sockaddr)
        if error not in (0, errno.EINPROGRESS):
            raise OSError(error, os.strerror(error))
        # Registered only now: a socket that is not connecting yet reports a
        # hang-up, which would read as the end of the attempt.
        stream = EpollSocketStream(sock, poller)
    except BaseException:
        sock.close()
        raise
    if error:
        try:
            await stream.wait_connected()
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
    return stream
