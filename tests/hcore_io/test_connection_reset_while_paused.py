"""A send on a stream the peer reset while the connection held events back.

A connection stops taking events from its protocol while a queue is full
(bounded memory); HTTP/2 is still read meanwhile, so the protocol learns of
a peer's RST_STREAM before the connection does.  A send on that stream is
then refused by the protocol; the sender must get StreamReset (the peer's
doing), not LocalProtocolError (a misuse), so that a server application
sees the client's disconnect.
"""

from __future__ import annotations

import anyio
import pytest

from hcore import LocalProtocolError
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore_io.connections import (
    HTTPConnection,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
    HTTPStream,
    StreamReset,
)

from .conftest import SocketBackend
from .connection_helpers import request_headers

pytestmark = pytest.mark.anyio

# The server's per-queue bound: the client's body fills it at once.
_BOUND = 4096


async def test_a_send_after_a_held_back_reset_raises_stream_reset(
    networking: SocketBackend,
) -> None:
    outcome: list[BaseException | None] = []
    paused: list[bool] = []
    reset_sent = anyio.Event()
    done = anyio.Event()

    async def handler(connection: HTTPConnection) -> None:
        stream = await connection.accept_stream()
        assert stream is not None
        async with anyio.create_task_group() as group:
            # Keeps the connection read while the stream's queue is full.
            group.start_soon(connection.accept_stream)
            await reset_sent.wait()
            # The reset reaches the protocol, not the stream's full queue.
            await anyio.sleep(0.3)
            paused.append(connection._paused)
            try:
                await stream.send_headers(((b":status", b"200"),), end_stream=False)
            except (StreamReset, LocalProtocolError) as exc:
                outcome.append(exc)
            else:
                outcome.append(None)
            group.cancel_scope.cancel()
        done.set()

    listener = await HTTPOverTCPListener.create(
        HTTP2ServerFactory(),
        networking,
        local_address=("127.0.0.1", 0),
        max_buffered_data=_BOUND,
    )
    opener = HTTPOverTCPOpener(HTTP2ClientFactory(), networking=networking)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, handler)
            async with await opener(listener.local_addresses[0], tls=False) as client:
                stream: HTTPStream = await client.open_stream(
                    request_headers("POST", "/", scheme="http")
                )
                async with anyio.create_task_group() as sending:
                    # Blocks for credit once the server's window is used up.
                    sending.start_soon(stream.send_data, b"x" * (8 * _BOUND))
                    await anyio.sleep(0.2)
                    sending.cancel_scope.cancel()
                await stream.send_stream_reset()
                reset_sent.set()
                await done.wait()
            await listener.aclose()
            group.cancel_scope.cancel()
    # The case under test: events were held back when the send came.
    assert paused == [True]
    [exc] = outcome
    assert isinstance(exc, StreamReset), exc
    assert exc.by_peer
