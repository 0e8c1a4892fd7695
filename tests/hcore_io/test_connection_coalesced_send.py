"""HTTPStream.send_headers_and_data: a head and its body leave in one write.

Every test runs on asyncio and Trio, over both socket backends
(SystemNetworking and EpollNetworking); the server's stream counts the
writes it is given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute

from hcore.events import DataReceived, HeadersReceived
from hcore.protocols import HTTPOverTCPFactory
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore_io.connections import HTTPConnection, HTTPStream

from .conftest import SocketBackend

pytestmark = pytest.mark.anyio

_FACTORIES: dict[str, tuple[HTTPOverTCPFactory, HTTPOverTCPFactory]] = {
    "1.1": (HTTP1ServerFactory(), HTTP1ClientFactory()),
    "2": (HTTP2ServerFactory(), HTTP2ClientFactory()),
}
_REQUEST = (
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"example.test"),
    (b":path", b"/"),
)


class _CountingStream(ByteStream):
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


@asynccontextmanager
async def _pair(
    version: str, networking: SocketBackend
) -> AsyncIterator[tuple[HTTPConnection, HTTPConnection, _CountingStream]]:
    """A client connection and the server connection it is connected to."""
    server_factory, client_factory = _FACTORIES[version]
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
        counting = _CountingStream(await receive.receive())
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


async def _read_all(stream: HTTPStream) -> tuple[HeadersReceived, bytes]:
    head: HeadersReceived | None = None
    body = b""
    async for event in stream:
        if isinstance(event, HeadersReceived):
            head = event
        elif isinstance(event, DataReceived):
            body += event.data
    assert head is not None
    return head, body


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_a_whole_response_leaves_in_one_write(
    version: str, networking: SocketBackend
) -> None:
    with anyio.fail_after(10):
        async with _pair(version, networking) as (client, server, counting):
            request = await client.open_stream(_REQUEST, end_stream=True)
            incoming = await server.accept_stream()
            assert incoming is not None
            first = await incoming.receive_event()
            assert isinstance(first, HeadersReceived)
            before = counting.sends
            await incoming.send_headers_and_data(
                ((b":status", b"200"), (b"content-length", b"5")),
                b"hello",
                end_stream=True,
            )
            assert counting.sends == before + 1
            head, body = await _read_all(request)
            assert (b":status", b"200") in head.headers
            assert not head.end_stream
            assert body == b"hello"
            await incoming.aclose()
            await request.aclose()


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_the_body_can_go_on_after_the_first_piece(
    version: str, networking: SocketBackend
) -> None:
    with anyio.fail_after(10):
        async with _pair(version, networking) as (client, server, _):
            request = await client.open_stream(_REQUEST, end_stream=True)
            incoming = await server.accept_stream()
            assert incoming is not None
            assert isinstance(await incoming.receive_event(), HeadersReceived)
            await incoming.send_headers_and_data(
                ((b":status", b"200"), (b"content-length", b"6")), b"abc"
            )
            await incoming.send_data(b"def", end_stream=True)
            head, body = await _read_all(request)
            assert (b":status", b"200") in head.headers
            assert body == b"abcdef"
            await incoming.aclose()
            await request.aclose()
