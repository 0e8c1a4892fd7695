"""A response body that came whole with its head is read at once, as before.

When every body event of a response was queued with its head, the exchange
is over: it gives its connection back to the pool at once, and hands the
body's pieces to a :meth:`~hcore_io.client.ResponseStream.whole` stream,
whose :meth:`~hcore_io.client.ResponseStream.aread` joins them in one step.
(A whole body over ``max_size`` keeps the exchange open, as a body still
arriving does: its reader may raise the bound.)  These tests compare a
stream that knows its pieces with one that does not (the same pieces behind
the same ``receive``), and with a whole one: the body returned,
``bytes_read``, the errors (a body over ``max_size``, announced or not),
when the stream closes, and reads mixed with :meth:`read_chunk`.  They run
small responses through a client (HTTP/1.1 and HTTP/2, both socket
backends, asyncio and Trio), read whole, streamed, and with the connection
reused; and check that a response that came whole does not hold its
connection while its body is unread, and one still arriving does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io import ResponseBodyTooLarge
from hcore_io.client import Client, ResponseStream

from .client_helpers import TestServer as Served  # (not collected as a test)
from .client_helpers import client_server
from .conftest import SocketBackend
from .connection_helpers import pattern

pytestmark = pytest.mark.anyio

BOUND = 10.0


def _stream(
    pieces: list[bytes],
    *,
    buffered: bool,
    max_size: int | None,
    content_length: int | None,
    closes: list[str],
) -> ResponseStream:
    """A stream over ``pieces``, as the exchange builds one for a whole body."""
    queue = deque(pieces)

    async def receive() -> bytes | None:
        if queue:
            return queue.popleft()
        return None

    async def close() -> None:
        closes.append("closed")

    stream = ResponseStream(
        receive, close, max_size=max_size, content_length=content_length
    )
    if buffered:
        stream._buffered = queue
    return stream


async def _outcome(stream: ResponseStream, first_chunk: bool) -> tuple[object, ...]:
    """What reading the stream gives: its reads, errors and state."""
    got: list[object] = []
    if first_chunk:
        got.append(await stream.read_chunk())
    for _ in range(2):
        try:
            got.append(await stream.aread())
        except ResponseBodyTooLarge as exc:
            got.append((type(exc).__name__, str(exc), exc.limit, exc.content_length))
    return (*got, stream.bytes_read, stream._done, stream._closed)


@pytest.mark.parametrize("first_chunk", [False, True])
@pytest.mark.parametrize("max_size", [None, 0, 2, 5, 6, 100])
@pytest.mark.parametrize("announced", [False, True])
@pytest.mark.parametrize("pieces", [[], [b"abc"], [b"ab", b"cd", b"e"]])
async def test_buffered_pieces_read_as_the_unbuffered(
    pieces: list[bytes], announced: bool, max_size: int | None, first_chunk: bool
) -> None:
    length = sum(map(len, pieces)) if announced else None
    outcomes = []
    for buffered in (True, False):
        closes: list[str] = []
        stream = _stream(
            pieces,
            buffered=buffered,
            max_size=max_size,
            content_length=length,
            closes=closes,
        )
        outcomes.append((await _outcome(stream, first_chunk), closes))
    assert outcomes[0] == outcomes[1]
    whole = ResponseStream.whole(
        deque(pieces), max_size=max_size, content_length=length
    )
    # The same reads, with nothing to release when it closes.
    assert await _outcome(whole, first_chunk) == outcomes[1][0]


@asynccontextmanager
async def _one_connection(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> AsyncIterator[tuple[Served, Client]]:
    """The test server, and a client of one connection to it over ``version``."""
    async with client_server(networking, server_tls_config) as server:
        async with Client(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=(version,),
            max_connections=1,
        ) as client:
            yield server, client


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_small_bodies_through_a_client(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with _one_connection(
        version, networking, server_tls_config, client_tls_config
    ) as (server, client):
        with anyio.fail_after(BOUND):
            for size in (0, 1, 1000, 20000):
                url = server.url(f"/bytes/{size}", tls=True)
                response = await client.get(url)
                assert response.content == pattern(size)
                assert response.stream.bytes_read == size
                async with client.stream("GET", url) as streamed:
                    body = b"".join([chunk async for chunk in streamed.stream])
                assert body == pattern(size)
            # Over the bound after the body came whole: refused as before.
            url = server.url("/bytes/1000", tls=True)
            async with client.stream("GET", url) as refused:
                refused.stream.max_size = 100
                with pytest.raises(ResponseBodyTooLarge):
                    await refused.aread()
            assert (await client.get(server.url("/ok", tls=True))).content == b"ok"
        metrics = client.pool.metrics
        assert metrics.requests == 10
        assert sum(c.completed for c in metrics.connections) >= 1


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_a_whole_response_gives_its_connection_back_unread(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with _one_connection(
        version, networking, server_tls_config, client_tls_config
    ) as (server, client):
        pool = client.pool
        with anyio.fail_after(BOUND):
            # An empty body ends with the head (one write, one read).
            empty = server.url("/bytes/0", tls=True)
            async with client.stream("GET", empty) as whole:
                # Unread, yet the exchange is over: the only connection
                # serves the next request meanwhile.
                assert pool.metrics.connections[0].completed == 1
                assert (await client.get(server.url("/ok", tls=True))).content == b"ok"
                assert await whole.aread() == b""
            gated = server.url("/gated", tls=True)
            async with client.stream("GET", gated) as arriving:
                assert pool.metrics.connections[0].completed == 2
                if version == "1.1":
                    # Its body still arriving, the response holds the
                    # connection: the next request waits for it.
                    with anyio.move_on_after(0.2) as waited:
                        await client.get(server.url("/ok", tls=True))
                    assert waited.cancelled_caught
                server.app.gate.set()
                assert await arriving.aread() == b"ok"
            assert (await client.get(server.url("/ok", tls=True))).content == b"ok"
        assert pool.metrics.created == 1
        assert pool.metrics.connections[0].errors == 0
