"""Pipelined HTTP/1.1 requests are all answered, in order.

The protocol releases a pipelined request only when the response before it
is complete, that is, during a send; the connection must route such events
before it waits on the network, where nothing more will come.
"""

from __future__ import annotations

import anyio
import pytest

from hcore.events import HeadersReceived
from hcore.protocols.http1 import HTTP1ServerFactory
from hcore_io import ConnectionClosed
from hcore_io.connections import HTTPConnection, HTTPOverTCPListener

from .conftest import SocketBackend

pytestmark = pytest.mark.anyio


async def _answer_every_request(connection: HTTPConnection) -> None:
    for _ in range(100):  # bounded: the test sends three requests
        try:
            event = await connection.receive_event()
        except ConnectionClosed:
            return
        if isinstance(event, HeadersReceived):
            path = dict(event.headers)[b":path"]
            await connection.send_headers(
                event.stream_id,
                [(b":status", b"200"), (b"content-length", str(len(path)).encode())],
            )
            await connection.send_data(event.stream_id, path, end_stream=True)


async def test_requests_sent_in_one_write_are_all_answered_in_order(
    networking: SocketBackend,
) -> None:
    net = networking
    listener = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(), net, local_address=("127.0.0.1", 0)
    )
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, _answer_every_request)
        client = await net.connect_tcp(listener.local_addresses[0])
        await client.send(
            b"GET /first HTTP/1.1\r\nhost: a\r\n\r\n"
            b"GET /second HTTP/1.1\r\nhost: a\r\n\r\n"
            b"GET /third HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"
        )
        received = b""
        with anyio.fail_after(5):
            for _ in range(100):  # bounded: until the server closes
                try:
                    received += await client.receive()
                except anyio.EndOfStream:
                    break
        await client.aclose()
        await listener.aclose()
        group.cancel_scope.cancel()
    assert received.count(b"HTTP/1.1 200 ") == 3
    assert received.index(b"/first") < received.index(b"/second")
    assert received.index(b"/second") < received.index(b"/third")
