"""Gathering: the answers of streams accepted together leave in one write.

A writer that finds other accepted streams not yet answered yields once,
holding the write lock, and their small messages join its send (see
``hcore_io.connections._gathering``).  Every test runs on asyncio and Trio,
over both socket backends; the server's stream counts the writes it is given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import ByteStream, SocketAttribute

from hcore.events import DataReceived, HeadersReceived
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore_io.connections import HTTPConnection, HTTPStream
from hcore_io.connections._gathering import Gathering
from hcore_io.connections._tcp_transport import TCPTransport

from .conftest import SocketBackend

pytestmark = pytest.mark.anyio

_REQUEST = (
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"example.test"),
    (b":path", b"/"),
)
_HEAD = ((b":status", b"200"), (b"content-length", b"2"))


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


class _ReportingCountingStream(_CountingStream):
    """As :class:`_CountingStream`, passing on what a cancelled send left (epoll's)."""

    @property
    def unsent(self) -> bytes | memoryview:
        return self._inner.unsent  # type: ignore[attr-defined,no-any-return]

    @unsent.setter
    def unsent(self, value: bytes | memoryview) -> None:
        self._inner.unsent = value  # type: ignore[attr-defined]


@asynccontextmanager
async def _pair(
    networking: SocketBackend,
) -> AsyncIterator[tuple[HTTPConnection, HTTPConnection, _CountingStream]]:
    """An HTTP/2 client connection and the server connection it is connected to."""
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
            _ReportingCountingStream(inner)
            if hasattr(inner, "unsent")
            else _CountingStream(inner)
        )
        server = HTTPConnection(HTTP2ServerFactory()(), counting)
        client = HTTPConnection(HTTP2ClientFactory()(), client_stream)
        try:
            async with anyio.create_task_group() as group:
                # Both prefaces cross before either side can go on.
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


async def _accept(
    client: HTTPConnection, server: HTTPConnection, count: int
) -> tuple[list[HTTPStream], list[HTTPStream]]:
    """Open ``count`` requests and accept them all (none answered yet)."""
    requests = [
        await client.open_stream(_REQUEST, end_stream=True) for _ in range(count)
    ]
    incoming: list[HTTPStream] = []
    # Bounded: one accept per request opened.
    for _ in range(count):
        stream = await server.accept_stream()
        assert stream is not None
        incoming.append(stream)
    return requests, incoming


async def _body(stream: HTTPStream) -> bytes:
    head: HeadersReceived | None = None
    body = b""
    async for event in stream:
        if isinstance(event, HeadersReceived):
            head = event
        elif isinstance(event, DataReceived):
            body += event.data
    assert head is not None
    assert (b":status", b"200") in head.headers
    return body


async def test_answers_of_streams_accepted_together_leave_in_one_write(
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(10):
        async with _pair(networking) as (client, server, counting):
            requests, incoming = await _accept(client, server, 8)
            before = counting.sends

            async def answer(index: int, stream: HTTPStream) -> None:
                await stream.send_headers_and_data(
                    _HEAD, b"%02d" % index, end_stream=True
                )
                await stream.aclose()

            async with anyio.create_task_group() as group:
                for index, stream in enumerate(incoming):
                    group.start_soon(answer, index, stream)
            # One write for the eight of them, not eight.
            assert counting.sends == before + 1
            for index, request in enumerate(requests):
                assert await _body(request) == b"%02d" % index
                await request.aclose()


async def test_a_lone_answer_is_written_before_its_send_returns(
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(10):
        async with _pair(networking) as (client, server, counting):
            # An earlier exchange, answered: nothing left unanswered.
            (request,), (stream,) = await _accept(client, server, 1)
            before = counting.sends
            await stream.send_headers_and_data(_HEAD, b"ok", end_stream=True)
            assert counting.sends == before + 1
            assert await _body(request) == b"ok"
            await stream.aclose()
            await request.aclose()


async def test_a_gathering_writer_cancelled_still_sends_what_joined(
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(10):
        async with _pair(networking) as (client, server, _):
            (first_request, second_request), (first, second) = await _accept(
                client, server, 2
            )
            scopes = [anyio.CancelScope(), anyio.CancelScope()]

            async def answer(index: int, stream: HTTPStream) -> None:
                with scopes[index]:
                    # The first to send gathers (yields once, holding the
                    # lock); the other joins, returns at once and cancels it.
                    await stream.send_headers_and_data(
                        _HEAD, b"%02d" % index, end_stream=True
                    )
                    scopes[1 - index].cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(answer, 0, first)
                group.start_soon(answer, 1, second)
            # The gathering writer was cancelled, the joiner was not.
            assert sorted(scope.cancelled_caught for scope in scopes) == [False, True]
            # Both answers arrive (the writer finished the write it owed),
            # and the connection is intact.
            assert await _body(first_request) == b"00"
            assert await _body(second_request) == b"01"
            await second_request.aclose()
            await second.aclose()
            await first.aclose()
            await first_request.aclose()
            third = await client.open_stream(_REQUEST, end_stream=True)
            answered = await server.accept_stream()
            assert answered is not None
            await answered.send_headers_and_data(_HEAD, b"03", end_stream=True)
            assert await _body(third) == b"03"
            await answered.aclose()
            await third.aclose()


class _RecordingStream(ByteStream):
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


class _ReportingRecordingStream(_RecordingStream):
    """As :class:`_RecordingStream`, telling what an interrupted send left."""

    unsent: bytes | memoryview = b""

    async def send(self, item: bytes) -> None:
        try:
            await super().send(item)
        except BaseException:
            self.unsent = item
            raise


@pytest.mark.parametrize("reports", [True, False], ids=["reports", "anyio"])
async def test_what_joined_is_sent_though_the_writer_is_cancelled(
    reports: bool,
) -> None:
    # No sockets: the stream is scripted.  The writer's own send raised its
    # cancellation before writing; what it owes is written, shielded.
    stream = _ReportingRecordingStream() if reports else _RecordingStream()
    protocol = HTTP2ClientFactory()()
    protocol.submit_headers(1, _REQUEST, end_stream=True)
    transport = TCPTransport(protocol, stream)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await Gathering.finish(transport)
    assert transport.interrupted_error is None
    assert stream.sent
    assert not transport.collect()
