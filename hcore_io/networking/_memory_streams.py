"""In-process byte pipes: the streams and listeners of :class:`MemoryNetworking`.

Theory of operation: a memory connection is two :class:`_Pipe` objects, one
per direction.  A pipe is a bounded byte buffer; the writer appends as much
as fits and waits for the reader to make room, so a peer that stops reading
pushes back on the writer exactly as a full TCP window does.  The writer
marks the end of its direction with EOF (``send_eof`` or ``aclose``); the
reader closing its end makes later writes fail.  Every change wakes whoever
waits on the pipe; waiters re-check the state in a loop.

The streams keep AnyIO's stream semantics: ``receive`` raises
:exc:`anyio.EndOfStream` once the peer's data is read after its EOF,
``send`` raises :exc:`anyio.BrokenResourceError` when the peer has closed,
and both raise :exc:`anyio.ClosedResourceError` once this side is closed.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream, Listener, SocketAttribute, TaskGroup

from hcore import Address
from hcore_io.networking._queue import Queue

__all__ = ("MemoryByteStream", "MemoryListener", "address_family", "make_pipe_pair")


def address_family(address: Address) -> socket.AddressFamily:
    """Tell the address family a textual IP address belongs to.

    :param address: host and port; a host with a colon is taken as IPv6.
    :return: ``AF_INET6`` or ``AF_INET``.
    """
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


class _Pipe:
    """One direction of a memory connection: a bounded byte buffer."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buffer = bytearray()
        #: The writer will write no more (``send_eof`` or ``aclose``).
        self.eof = False
        #: The reader is gone: writes fail, buffered bytes are discarded.
        self.reader_closed = False
        self._changed = anyio.Event()

    def notify(self) -> None:
        """Wake every task waiting for a change of this pipe."""
        self._changed.set()
        self._changed = anyio.Event()

    async def wait(self) -> None:
        """Wait for the next change of this pipe."""
        await self._changed.wait()


class MemoryByteStream(ByteStream):
    """One end of an in-process connection.

    Made in pairs by :func:`make_pipe_pair`; see the module docstring for
    the semantics.  A ``send`` larger than the peer's free buffer space is
    written piece by piece as the peer reads, so if it is cancelled part of
    it may have been delivered.
    """

    def __init__(
        self,
        incoming: _Pipe,
        outgoing: _Pipe,
        attributes: Mapping[Any, Callable[[], Any]],
    ) -> None:
        self._incoming = incoming
        self._outgoing = outgoing
        self._attributes = attributes
        self._closed = False
        self._eof_sent = False
        self._receive_guard = anyio.ResourceGuard("reading from")
        self._send_guard = anyio.ResourceGuard("writing to")

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Take up to ``max_bytes`` of what the peer sent, waiting for some.

        :raises anyio.EndOfStream: the peer sent EOF and everything was read.
        :raises anyio.ClosedResourceError: this end is closed.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        with self._receive_guard:
            await anyio.lowlevel.checkpoint()
            pipe = self._incoming
            while True:
                if self._closed:
                    raise anyio.ClosedResourceError
                if pipe.buffer:
                    data = bytes(pipe.buffer[:max_bytes])
                    del pipe.buffer[:max_bytes]
                    pipe.notify()
                    return data
                if pipe.eof:
                    raise anyio.EndOfStream
                await pipe.wait()

    async def send(self, item: bytes) -> None:
        """Write ``item``, waiting while the peer's buffer is full.

        :raises anyio.BrokenResourceError: the peer has closed its end.
        :raises anyio.ClosedResourceError: this end is closed or sent EOF.
        """
        with self._send_guard:
            await anyio.lowlevel.checkpoint()
            pipe = self._outgoing
            view = memoryview(item)
            while True:
                if self._closed or self._eof_sent:
                    raise anyio.ClosedResourceError
                if pipe.reader_closed:
                    raise anyio.BrokenResourceError
                room = pipe.capacity - len(pipe.buffer)
                if room > 0:
                    pipe.buffer += view[:room]
                    view = view[room:]
                    pipe.notify()
                if not view:
                    return
                await pipe.wait()

    async def send_eof(self) -> None:
        """Tell the peer nothing more will be sent; receiving goes on.

        :raises anyio.ClosedResourceError: this end is closed.
        """
        await anyio.lowlevel.checkpoint()
        if self._closed:
            raise anyio.ClosedResourceError
        self._eof_sent = True
        self._outgoing.eof = True
        self._outgoing.notify()

    async def aclose(self) -> None:
        """Close this end: the peer reads EOF, and its writes fail."""
        if not self._closed:
            self._closed = True
            self._outgoing.eof = True
            self._outgoing.notify()
            self._incoming.reader_closed = True
            self._incoming.buffer.clear()
            self._incoming.notify()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The socket (and, for TLS, the TLS) attributes of this end."""
        return self._attributes


def _socket_attributes(local: Address, remote: Address) -> dict[Any, Callable[[], Any]]:
    family = address_family(local)
    return {
        SocketAttribute.family: lambda: family,
        SocketAttribute.local_address: lambda: local,
        SocketAttribute.local_port: lambda: local[1],
        SocketAttribute.remote_address: lambda: remote,
        SocketAttribute.remote_port: lambda: remote[1],
    }


def make_pipe_pair(
    client_address: Address,
    server_address: Address,
    *,
    capacity: int,
    client_extra: Mapping[Any, Callable[[], Any]] | None = None,
    server_extra: Mapping[Any, Callable[[], Any]] | None = None,
) -> tuple[MemoryByteStream, MemoryByteStream]:
    """Make the two ends of one in-process connection.

    :param client_address: the client end's local address.
    :param server_address: the server end's local address.
    :param capacity: bytes each direction buffers before a writer waits.
    :param client_extra: more typed attributes of the client end.
    :param server_extra: more typed attributes of the server end.
    :return: the client end and the server end.
    """
    to_server = _Pipe(capacity)
    to_client = _Pipe(capacity)
    client_attributes = _socket_attributes(client_address, server_address)
    client_attributes.update(client_extra or {})
    server_attributes = _socket_attributes(server_address, client_address)
    server_attributes.update(server_extra or {})
    client = MemoryByteStream(to_client, to_server, client_attributes)
    server = MemoryByteStream(to_server, to_client, server_attributes)
    return client, server


class MemoryListener(Listener[ByteStream]):
    """Accepts the in-process connections made to one address.

    :meth:`serve` returns once the listener is closed; connections that were
    made but not yet accepted are closed with it.
    """

    def __init__(
        self,
        address: Address,
        accepted: Queue[ByteStream],
        on_close: Callable[[], None],
    ) -> None:
        self._address = address
        self._accepted = accepted
        self._on_close = on_close

    async def accept(self) -> ByteStream:
        """Wait for the next connection.

        :raises anyio.ClosedResourceError: the listener is closed.
        """
        return await self._accepted.get()

    async def serve(
        self,
        handler: Callable[[ByteStream], Any],
        task_group: TaskGroup | None = None,
    ) -> None:
        """Call ``handler(stream)`` in a new task for each connection.

        :param handler: the connection handler.
        :param task_group: where to start the handlers; by default a task
            group that this call waits for.
        """
        if task_group is None:
            async with anyio.create_task_group() as own_group:
                await self._serve(handler, own_group)
        else:
            await self._serve(handler, task_group)

    async def _serve(
        self, handler: Callable[[ByteStream], Any], task_group: TaskGroup
    ) -> None:
        while True:
            try:
                stream = await self.accept()
            except anyio.ClosedResourceError:
                return
            task_group.start_soon(handler, stream)

    async def aclose(self) -> None:
        """Stop accepting; close the connections not accepted yet."""
        self._on_close()
        for stream in self._accepted.close():
            await stream.aclose()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """``SocketAttribute.local_address`` (and family, port) of the listener."""
        address = self._address
        family = address_family(address)
        return {
            SocketAttribute.family: lambda: family,
            SocketAttribute.local_address: lambda: address,
            SocketAttribute.local_port: lambda: address[1],
        }
