"""Gathering: the answers of streams accepted together leave in one write.

A writer that finds other accepted streams not yet answered yields once,
holding the write lock, and their small messages join its send (see
``hcore_io.connections._gathering``).  Every test runs on asyncio and Trio,
over both socket backends; the server's stream counts the writes it is given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore_io.connections import HTTPConnection, HTTPStream
from hcore_io.connections._gathering import Gathering
from hcore_io.connections._tcp_transport import TCPTransport

from .conftest import SocketBackend
from .stream_doubles import (
    CountingStream,
    RecordingStream,
    ReportingRecordingStream,
    counted_pair,
    read_all,
)

pytestmark = pytest.mark.anyio

_REQUEST = (
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"example.test"),
    (b":path", b"/"),
)
_HEAD = ((b":status", b"200"), (b"content-length", b"2"))


@asynccontextmanager
async def _pair(
    networking: SocketBackend,
) -> AsyncIterator[tuple[HTTPConnection, HTTPConnection, CountingStream]]:
    """An HTTP/2 client connection and the server connection it is connected to."""
    async with counted_pair(
        HTTP2ServerFactory(), HTTP2ClientFactory(), networking, pass_unsent=True
    ) as pair:
        yield pair


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
    head, body = await read_all(stream)
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


@pytest.mark.parametrize("reports", [True, False], ids=["reports", "anyio"])
async def test_what_joined_is_sent_though_the_writer_is_cancelled(
    reports: bool,
) -> None:
    # No sockets: the stream is scripted.  The writer's own send raised its
    # cancellation before writing; what it owes is written, shielded.
    stream = ReportingRecordingStream() if reports else RecordingStream()
    protocol = HTTP2ClientFactory()()
    protocol.submit_headers(1, _REQUEST, end_stream=True)
    transport = TCPTransport(protocol, stream)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await Gathering.finish(transport)
    assert transport.interrupted_error is None
    assert stream.sent
    assert not transport.collect()
