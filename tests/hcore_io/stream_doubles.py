"""Byte-stream doubles for the connection tests, and a counted connection pair.

- :class:`CountingStream` wraps a real stream and counts the writes made on
  it; :class:`ReportingCountingStream` also passes on what a cancelled send
  left unsent (epoll's streams report it).
- :class:`RecordingStream` is scripted (no socket): it records what it
  sends, and a send raises a pending cancellation first;
  :class:`ReportingRecordingStream` also tells what an interrupted send left.
- :func:`counted_pair` connects a client and a server :class:`HTTPConnection`
  over loopback, the server's stream counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream, SocketAttribute

from hcore.events import DataReceived, HeadersReceived
from hcore.protocols import HTTPOverTCPFactory
from hcore_io.connections import HTTPConnection, HTTPStream

from .conftest import SocketBackend


class CountingStream(ByteStream):
    """A byte stream that counts the writes made on it."""

    def __init__(self, inner: ByteStream) -> None:
        self._inner = inner
        self.sends = 0

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        self.sends += 1
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._inner.extra_attributes


class ReportingCountingStream(CountingStream):
    """As :class:`CountingStream`, passing on what a cancelled send left (epoll's)."""

    @property
    def unsent(self) -> bytes | memoryview:
        return self._inner.unsent  # type: ignore[attr-defined,no-any-return]

    @unsent.setter
    def unsent(self, value: bytes | memoryview) -> None:
        self._inner.unsent = value  # type: ignore[attr-defined]


class RecordingStream(ByteStream):
    """Records what it sends; a send raises a pending cancellation first."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, item: bytes) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self.sent.append(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.sleep_forever()
        raise AssertionError("not reached")

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {}


class ReportingRecordingStream(RecordingStream):
    """As :class:`RecordingStream`, telling what an interrupted send left (epoll's)."""

    unsent: bytes | memoryview = b""

    async def send(self, item: bytes) -> None:
        try:
            await super().send(item)
        except BaseException:
            self.unsent = item
            raise


@asynccontextmanager
async def counted_pair(
    server_factory: HTTPOverTCPFactory,
    client_factory: HTTPOverTCPFactory,
    networking: SocketBackend,
    *,
    pass_unsent: bool,
) -> AsyncIterator[tuple[HTTPConnection, HTTPConnection, CountingStream]]:
    """A client connection and the server connection it is connected to.

    :param pass_unsent: wrap a server stream that reports what a cancelled
        send left in a :class:`ReportingCountingStream`, so the connection
        still sees the report; otherwise always a plain :class:`CountingStream`.
    :return: (client, server, the server's counting stream), as a context.
    """
    listener = await networking.listen_tcp(("127.0.0.1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    send, receive = anyio.create_memory_object_stream[ByteStream](1)
    done = anyio.Event()

    async def handle(stream: ByteStream) -> None:
        await send.send(stream)
        # The stream stays the test's until it is over.
        await done.wait()

    async with anyio.create_task_group() as serving:
        serving.start_soon(listener.serve, handle)
        client_stream = await networking.connect_tcp(("127.0.0.1", address[1]))
        inner = await receive.receive()
        counting = (
            ReportingCountingStream(inner)
            if pass_unsent and hasattr(inner, "unsent")
            else CountingStream(inner)
        )
        server = HTTPConnection(server_factory(), counting)
        client = HTTPConnection(client_factory(), client_stream)
        try:
            async with anyio.create_task_group() as group:
                # HTTP/2: both prefaces cross before either side can go on.
                group.start_soon(server.open)
                await client.open()
            yield client, server, counting
        finally:
            await client.aclose()
            await server.aclose()
            done.set()
            await listener.aclose()
            serving.cancel_scope.cancel()
            send.close()
            receive.close()


async def read_all(stream: HTTPStream) -> tuple[HeadersReceived, bytes]:
    """Read a response stream to its end.

    :return: its head and the whole body.
    """
    head: HeadersReceived | None = None
    body = b""
    async for event in stream:
        if isinstance(event, HeadersReceived):
            head = event
        elif isinstance(event, DataReceived):
            body += event.data
    assert head is not None
    return head, body
