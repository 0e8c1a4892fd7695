"""A sequential HTTP/1.1 server's path through the connection, end to end.

The connection routes what a read brought inside its wait (no coroutine of
its own), writes through the transport's send without a frame per layer,
and an accepting server's handles are queued without wake-ups when nobody
else waits.  These tests serve one task's ``accept_stream`` /
``receive_event`` / ``send_*`` loop, as ``hcore server`` does, and check the
bytes and events the peer and the server see: pipelined requests, a body
over the queue bound, the keep-alive timeout, a cancelled receive and a peer
that closes mid-body.  Every test runs on asyncio and Trio, over both socket
backends.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest
from anyio.abc import ByteStream

from hcore.events import DataReceived, Event, HeadersReceived
from hcore.protocols.http1 import HTTP1ServerFactory
from hcore_io import ConnectionClosed, ReadTimeout
from hcore_io.connections import HTTPConnection, HTTPOverTCPListener
from hcore_io.connections._read_timer import TaskScope

from .conftest import SocketBackend

pytestmark = pytest.mark.anyio

# A wait that hangs fails the test instead of the run.
BOUND = 10.0
# A small queue bound, so that a body crosses it.
QUEUE_BOUND = 4096


class Server:
    """Serves requests one after the other, recording what it saw."""

    def __init__(self, keep_alive: float = BOUND, answers: int = 0) -> None:
        self.keep_alive = keep_alive
        # How many answers set ``done`` (0: none; a close mid-body does).
        self.answers = answers
        self.events: list[Event] = []
        self.outcomes: list[str] = []
        self.waiting = anyio.Event()
        self.done = anyio.Event()

    async def __call__(self, connection: HTTPConnection) -> None:
        for _ in range(20):  # bounded: each test sends a few requests
            try:
                stream = await connection.accept_stream(timeout=self.keep_alive)
            except ReadTimeout:
                self.outcomes.append("keep-alive timeout")
                continue
            if stream is None:
                self.outcomes.append("over")
                return
            body = b""
            async with stream:
                try:
                    # Bounded by the request's events.
                    while True:
                        self.waiting.set()
                        event = await stream.receive_event()
                        self.events.append(event)
                        if isinstance(event, DataReceived):
                            body += event.data
                        if isinstance(event, HeadersReceived | DataReceived) and (
                            event.end_stream
                        ):
                            break
                except ConnectionClosed:
                    self.outcomes.append("closed mid-body")
                    self.done.set()
                    return
                answer = b"%d" % len(body)
                await stream.send_headers_and_data(
                    ((b":status", b"200"), (b"content-length", b"%d" % len(answer))),
                    answer,
                    end_stream=True,
                )
            self.outcomes.append("answered")
            if self.outcomes.count("answered") == self.answers:
                self.done.set()


async def _read_all(client: ByteStream) -> bytes:
    received = b""
    for _ in range(10_000):  # bounded: until the server closes
        try:
            received += await client.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            break
    return received


async def _serve(networking: SocketBackend) -> HTTPOverTCPListener:
    return await HTTPOverTCPListener.create(
        HTTP1ServerFactory(),
        networking,
        local_address=("127.0.0.1", 0),
        max_buffered_data=QUEUE_BOUND,
    )


async def test_pipelined_requests_and_a_body_over_the_queue_bound(
    networking: SocketBackend,
) -> None:
    server = Server(answers=3)
    listener = await _serve(networking)
    body = bytes(range(256)) * 256  # 64 KiB: many times the queue bound
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, server)
        client = await networking.connect_tcp(listener.local_addresses[0])
        with anyio.fail_after(BOUND):
            # The body first: a request pipelined behind an unanswered one
            # is held to the protocol's own bound.
            await client.send(
                b"POST /first HTTP/1.1\r\nhost: a\r\n"
                b"content-length: %d\r\n\r\n"
                % len(body)
                + body
                + b"GET /second HTTP/1.1\r\nhost: a\r\n\r\n"
                b"GET /third HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"
            )
            received = await _read_all(client)
            # The task notes its last answer after the bytes left.
            await server.done.wait()
        await client.aclose()
        group.cancel_scope.cancel()
    await listener.aclose()
    assert received.count(b"HTTP/1.1 200 ") == 3
    answers = [
        part.rsplit(b"\r\n\r\n", 1)[-1] for part in received.split(b"HTTP/1.1 ")[1:]
    ]
    assert answers == [b"%d" % len(body), b"0", b"0"]
    heads = [event for event in server.events if isinstance(event, HeadersReceived)]
    assert [dict(head.headers)[b":path"] for head in heads] == [
        b"/first",
        b"/second",
        b"/third",
    ]
    assert [head.stream_id for head in heads] == [1, 3, 5]
    data = b"".join(
        event.data for event in server.events if isinstance(event, DataReceived)
    )
    assert data == body
    # ("over" may follow, if the task was not cancelled first.)
    assert server.outcomes[:3] == ["answered", "answered", "answered"]


async def test_keep_alive_timeout_leaves_the_connection_serving(
    networking: SocketBackend,
) -> None:
    server = Server(keep_alive=0.2)
    listener = await _serve(networking)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, server)
        client = await networking.connect_tcp(listener.local_addresses[0])
        with anyio.fail_after(BOUND):
            await client.send(b"GET /a HTTP/1.1\r\nhost: a\r\n\r\n")
            first = await client.receive()
            # Longer than the keep-alive timeout: the wait times out, and
            # the connection serves the next request all the same.
            await anyio.sleep(0.5)
            await client.send(
                b"GET /b HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"
            )
            rest = await _read_all(client)
        await client.aclose()
        group.cancel_scope.cancel()
    await listener.aclose()
    assert first.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 200 ")
    assert server.outcomes[0] == "answered"
    assert "keep-alive timeout" in server.outcomes
    assert server.outcomes.count("answered") == 2


async def test_a_cancelled_receive_resets_the_exchange(
    networking: SocketBackend,
) -> None:
    connections: list[HTTPConnection] = []
    cancelled: list[bool] = []

    async def handler(connection: HTTPConnection) -> None:
        connections.append(connection)
        stream = await connection.accept_stream()
        assert stream is not None
        head = await stream.receive_event()
        assert isinstance(head, HeadersReceived)
        with anyio.move_on_after(0.2) as scope:
            await stream.receive_event()  # the body never comes
        cancelled.append(scope.cancelled_caught)

    listener = await _serve(networking)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, handler)
        client = await networking.connect_tcp(listener.local_addresses[0])
        with anyio.fail_after(BOUND):
            await client.send(
                b"POST /a HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\n"
            )
            # The reset closes an HTTP/1.1 connection: the peer sees its end.
            received = await _read_all(client)
        await client.aclose()
        group.cancel_scope.cancel()
    await listener.aclose()
    assert cancelled == [True]
    assert received == b""
    assert connections[0].has_expired()


async def test_a_peer_closing_mid_body(networking: SocketBackend) -> None:
    server = Server()
    listener = await _serve(networking)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, server)
        client = await networking.connect_tcp(listener.local_addresses[0])
        with anyio.fail_after(BOUND):
            await client.send(
                b"POST /a HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\nabc"
            )
            await server.waiting.wait()
            await client.aclose()
            await server.done.wait()
        group.cancel_scope.cancel()
    await listener.aclose()
    assert isinstance(server.events[0], HeadersReceived)
    assert b"".join(
        event.data for event in server.events if isinstance(event, DataReceived)
    ) in (b"", b"abc")
    assert server.outcomes == ["closed mid-body"]


# TaskScope is asyncio's; Trio reads under AnyIO's scopes.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_task_scope_given_the_loop_cancels_as_without() -> None:
    loop = asyncio.get_running_loop()
    for scope in (TaskScope(), TaskScope(loop)):
        with scope:
            loop.call_soon(scope.cancel)
            await anyio.sleep(BOUND)
        assert scope.cancel_called and scope.cancelled_caught
