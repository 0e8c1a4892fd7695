"""Streams opened without a wait: ``open_stream_nowait``, ``send_nowait``, and
a response's queued events taken with its head.

On epoll's plain TCP a request head is written in the call that submits it
(no scope, no checkpoint); everywhere else ``open_stream_nowait`` does
nothing and ``open_stream`` is used.  A head the socket takes only part of
leaves its rest queued for :meth:`HTTPConnection.flush`, which a timeout
bounds.  Every test runs on asyncio and Trio, over both socket backends.
"""

from __future__ import annotations

import socket

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols.http1 import HTTP1ClientFactory
from hcore_io.client import Client, Timeouts
from hcore_io.connections import HTTPOverTCPOpener
from hcore_io.networking import EpollNetworking
from hcore_io.networking._epoll_streams import EpollSocketStream

from .client_helpers import client_server
from .conftest import SocketBackend
from .connection_helpers import App, pattern, read_response, request_headers, serving

pytestmark = pytest.mark.anyio

# A wait that hangs fails the test instead of the run.
BOUND = 10.0


async def test_open_stream_nowait_writes_the_head_at_once_on_epoll(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with serving(
        "1.1",
        App(),
        server_tls=server_tls_config,
        client_tls=client_tls_config,
        networking=networking,
    ) as served:
        connection = served.connection
        taken: list[int] = []

        def took() -> None:
            taken.append(1)

        with anyio.fail_after(BOUND):
            for round_ in range(3):
                stream = connection.open_stream_nowait(
                    request_headers("GET", "/bytes/100", scheme="http"),
                    end_stream=True,
                    on_submitted=took,
                )
                if not isinstance(networking, EpollNetworking):
                    # AnyIO's streams cannot write without waiting.
                    assert stream is None and not taken
                    assert not connection.write_pending
                    stream = await connection.open_stream(
                        request_headers("GET", "/bytes/100", scheme="http"),
                        end_stream=True,
                    )
                else:
                    assert stream is not None and len(taken) == round_ + 1
                    assert not connection.write_pending
                async with stream:
                    response = await read_response(stream)
                assert response.status == 200
                assert response.body == pattern(100)


async def test_open_stream_nowait_does_nothing_while_another_task_writes(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with serving(
        "2",
        App(),
        server_tls=server_tls_config,
        client_tls=client_tls_config,
        networking=networking,
    ) as served:
        connection = served.connection
        with anyio.fail_after(BOUND):
            async with connection._write_lock:
                # Held (as by a task blocked in a write): nothing is submitted.
                assert (
                    connection.open_stream_nowait(
                        request_headers("GET", "/bytes/10", scheme="http"),
                        end_stream=True,
                    )
                    is None
                )
            stream = connection.open_stream_nowait(
                request_headers("GET", "/bytes/10", scheme="http"), end_stream=True
            )
            if stream is None:
                stream = await connection.open_stream(
                    request_headers("GET", "/bytes/10", scheme="http"),
                    end_stream=True,
                )
            async with stream:
                response = await read_response(stream)
            assert response.body == pattern(10)
            # HTTP/2 numbers the refused attempt nothing: this was stream 1.
            assert stream.stream_id == 1


async def test_a_head_the_socket_takes_in_part_is_flushed_within_a_timeout(
    networking: SocketBackend,
) -> None:
    # A listener that never accepts: the kernel buffers what its receive
    # buffer holds, then the client's send would block.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        opener = HTTPOverTCPOpener(HTTP1ClientFactory(), networking=networking)
        huge = request_headers(
            "GET", "/", scheme="http", extra=[(b"x-filler", b"a" * (32 << 20))]
        )
        with anyio.fail_after(BOUND):
            connection = await opener(("127.0.0.1", port), tls=False)
            try:
                stream = connection.open_stream_nowait(huge, end_stream=True)
                if not isinstance(networking, EpollNetworking):
                    assert stream is None
                    return
                assert stream is not None
                # The rest waits for a flush, which the socket blocks.
                assert connection.write_pending
                with anyio.move_on_after(0.3) as scope:
                    await connection.flush()
                assert scope.cancelled_caught
            finally:
                with anyio.move_on_after(BOUND, shield=True):
                    await connection.aclose()


async def test_send_nowait_sends_what_the_socket_takes() -> None:
    left, right = socket.socketpair()
    with left, right:
        from hcore_io.networking._epoll_hosted import current_poller

        stream = EpollSocketStream(left, current_poller())
        try:
            assert stream.send_nowait(b"hello") == 5
            assert right.recv(16) == b"hello"
            # Far more than the socket buffers take: a part, then nothing.
            huge = b"x" * (64 << 20)
            sent = stream.send_nowait(huge)
            assert 0 < sent < len(huge)
            assert stream.send_nowait(huge) == 0
        finally:
            await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            stream.send_nowait(b"late")


async def test_a_small_response_is_taken_with_its_head(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config) as server,
        Client(networking=networking, timeouts=Timeouts(read=BOUND)) as client,
    ):
        with anyio.fail_after(BOUND):
            for _ in range(3):
                response = await client.get(server.url("/ok"))
                assert response.status == 200
                assert response.content == b"ok"
            # A streamed one gives the same pieces, then its end.
            async with client.stream("GET", server.url("/ok")) as streamed:
                pieces = [piece async for piece in streamed.stream]
            assert b"".join(pieces) == b"ok"
        # Every exchange was given back: the one connection is idle.
        entries = client.pool._entries
        assert len(entries) == 1 and entries[0].active == 0
        assert client.pool.metrics.connections[0].completed == 4


async def test_receive_event_nowait_takes_only_queued_events(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with serving(
        "1.1",
        App(),
        server_tls=server_tls_config,
        client_tls=client_tls_config,
        networking=networking,
    ) as served:
        connection = served.connection
        with anyio.fail_after(BOUND):
            stream = await connection.open_stream(
                request_headers("GET", "/bytes/50", scheme="http"), end_stream=True
            )
            async with stream:
                # Nothing came yet: no wait, nothing taken.
                assert stream.receive_event_nowait() is None
                head = await stream.receive_event()
                assert isinstance(head, HeadersReceived)
                body = b""
                ended = False
                # Bounded by the response's events.
                while not ended:
                    event = stream.receive_event_nowait()
                    if event is None:
                        event = await stream.receive_event()
                    assert isinstance(event, DataReceived)
                    body += event.data
                    ended = event.end_stream
                assert body == pattern(50)
                assert stream.receive_event_nowait() is None
