"""The pool's cheaper per-request paths keep their guarantees.

- The byte-counting wrapper the pool puts on each TCP stream passes on what
  an interrupted send left unsent when the stream tells it (EpollNetworking
  over plain TCP), so the connection layer finishes a cancelled write
  instead of shielding every write, and counts what left before the
  interruption; over AnyIO's sockets it has no such attribute, and the
  connection shields its writes as before.
- A response closed after its body ended is closed without a shield: a
  cancellation arriving meanwhile still gives the connection back, and the
  next request reuses it.
- Tasks waiting for a connection with no pool timeout (no cancel scope of
  their own) are each handed one in turn.
"""

from __future__ import annotations

import socket

import anyio
import anyio.lowlevel
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.client import (
    URL,
    Client,
    ConnectionMetrics,
    ConnectionPool,
    ConnectionState,
    Request,
)
from hcore_io.client._networking import CountingNetworking
from hcore_io.connections import HTTPStream
from hcore_io.networking import EpollNetworking

from .client_helpers import client_server
from .conftest import SocketBackend

pytestmark = pytest.mark.anyio

# A request that hangs fails the test within this.
BOUND = 10.0


async def test_counting_stream_passes_unsent_on(networking: SocketBackend) -> None:
    metrics = ConnectionMetrics("test")
    received: list[bytes] = []
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:

        async def serve(peer: anyio.abc.SocketStream) -> None:
            async with peer:
                received.append(await peer.receive())
                await peer.send(b"pong")

        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, serve)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            counting = CountingNetworking(networking, metrics)
            stream = await counting.connect_tcp(("127.0.0.1", port))
            with anyio.fail_after(BOUND):
                await stream.send(b"ping")
                assert await stream.receive() == b"pong"
            reports = isinstance(networking, EpollNetworking)
            assert hasattr(stream, "unsent") is reports
            if reports:
                inner = stream._stream  # type: ignore[attr-defined]
                inner.unsent = b"rest"
                assert stream.unsent == b"rest"  # type: ignore[attr-defined]
                stream.unsent = b""  # type: ignore[attr-defined]
                assert inner.unsent == b""
            await stream.aclose()
            group.cancel_scope.cancel()
    assert received == [b"ping"]
    assert (metrics.bytes_sent, metrics.bytes_received) == (4, 4)
    assert counting.received.is_set()


async def test_interrupted_send_counts_what_left(networking: SocketBackend) -> None:
    metrics = ConnectionMetrics("test")
    item = b"z" * (32 << 20)  # more than loopback buffers hold unread
    # A listener that never accepts: the kernel completes the handshake and
    # buffers what it can, then the sender blocks.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        counting = CountingNetworking(networking, metrics)
        stream = await counting.connect_tcp(("127.0.0.1", port))
        try:
            with anyio.move_on_after(0.3) as scope:
                await stream.send(item)
            assert scope.cancelled_caught
            if isinstance(networking, EpollNetworking):
                left = len(stream.unsent)  # type: ignore[attr-defined]
                assert 0 < metrics.bytes_sent == len(item) - left
            else:
                # AnyIO's streams cannot tell: an interrupted send counts nothing.
                assert metrics.bytes_sent == 0
        finally:
            await anyio.aclose_forcefully(stream)


@pytest.mark.parametrize("checkpoint", [False, True])
@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_close_in_cancelled_scope_gives_connection_back(
    version: str,
    checkpoint: bool,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if checkpoint:
        # Closing a finished stream rarely awaits anything (its last window
        # credit is mostly written already): make it, so that the
        # cancellation surely lands inside the close.
        close = HTTPStream.aclose

        async def slow_close(stream: HTTPStream) -> None:
            await anyio.lowlevel.checkpoint()
            await close(stream)

        monkeypatch.setattr(HTTPStream, "aclose", slow_close)
    async with client_server(networking, server_tls_config) as server:
        url = URL(server.url("/bytes/70000", tls=True, host="127.0.0.1"))
        async with ConnectionPool(
            networking,
            tls_config=client_tls_config,
            http_versions=(version,),
            max_connections=1,
        ) as pool:
            with anyio.fail_after(BOUND):
                for _ in range(3):
                    response = await pool.handle_request(Request("GET", url))
                    # The body read to its end, then the stream closed (and
                    # on HTTP/2 its window credit written) under a cancelled
                    # scope: whether or not that raises, the entry is back.
                    with anyio.CancelScope() as scope:
                        body = b""
                        while (chunk := await response.stream.read_chunk()) is not None:
                            body += chunk
                            if len(body) == 70000:
                                scope.cancel()
                    await response.aclose()
                    assert len(body) == 70000
                    (connection,) = pool.metrics.connections
                    assert connection.state is ConnectionState.IDLE
                    assert connection.errors == 0
            metrics = pool.metrics
            assert metrics.created == 1
            assert metrics.connections[0].completed == 3
            assert metrics.connections[0].http_version == version


async def test_waiters_without_pool_timeout_each_get_the_connection(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
) -> None:
    async with client_server(networking, server_tls_config) as server:
        url = server.url("/slow?delay=0.01", host="127.0.0.1")
        async with Client(
            networking=networking,
            http_versions=("1.1",),
            max_connections=1,
            max_connections_per_host=1,
        ) as client:
            statuses: list[int] = []

            async def get() -> None:
                statuses.append((await client.get(url)).status)

            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as group:
                    for _ in range(6):
                        group.start_soon(get)
            assert statuses == [200] * 6
            metrics = client.pool.metrics
            assert metrics.created == 1
            assert metrics.connections[0].completed == 6
