"""HTTPStream.send_headers_and_data: a head and its body leave in one write.

Every test runs on asyncio and Trio, over both socket backends
(SystemNetworking and EpollNetworking); the server's stream counts the
writes it is given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from hcore.events import HeadersReceived
from hcore.protocols import HTTPOverTCPFactory
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore_io.connections import HTTPConnection

from .conftest import SocketBackend
from .stream_doubles import CountingStream, counted_pair, read_all

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


@asynccontextmanager
async def _pair(
    version: str, networking: SocketBackend
) -> AsyncIterator[tuple[HTTPConnection, HTTPConnection, CountingStream]]:
    """A client connection and the server connection it is connected to."""
    server_factory, client_factory = _FACTORIES[version]
    async with counted_pair(
        server_factory, client_factory, networking, pass_unsent=False
    ) as pair:
        yield pair


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
            head, body = await read_all(request)
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
            head, body = await read_all(request)
            assert (b":status", b"200") in head.headers
            assert body == b"abcdef"
            await incoming.aclose()
            await request.aclose()
