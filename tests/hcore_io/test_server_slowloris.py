"""Slowloris: clients dribbling the request head or body, on every version.

Each server serves one connection at a time (``max_connections=1``).  A
client sends its request head (or body) one byte at a time; the server's
deadline (``request_header_timeout`` for the head, ``body_timeout`` for
the body, then ``keep_alive_timeout`` on HTTP/2 and HTTP/3) fires, the
connection is dropped, and the slot it held is freed: a new client is then
served, not refused with 503.  Every test runs on asyncio and Trio and on
both socket backends.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

import anyio
import h2.config
import h2.connection
import pytest
from aioquic.h3.connection import H3Connection
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted

from hcore import ClientTLSConfig, Datagram, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived, StreamResetReceived
from hcore_io import ByteStream, Limits, NetworkError
from hcore_io.connections import StreamReset

from .conftest import SocketBackend
from .server_apps import app
from .server_helpers import Running, fetch, request_headers, running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

#: Short deadlines, so that a dribble crosses them quickly.
LIMITS = Limits(
    max_connections=1,
    request_header_timeout=0.5,
    body_timeout=0.3,
    keep_alive_timeout=0.5,
)
#: Seconds between two bytes of a dribble: the head's deadline is crossed
#: after a few bytes; for the body, every pause crosses ``body_timeout``.
HEAD_PACE = 0.05
BODY_PACE = 1.0


async def _wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    # Polling: the condition is the server's state, which signals nothing.
    with anyio.fail_after(seconds):
        for _ in range(int(seconds / 0.02) + 1):
            if condition():
                return
            await anyio.sleep(0.02)
    raise AssertionError(f"not true within {seconds} s")


async def _served_afterwards(served: Running, version: str) -> None:
    """The slot is free: a new client gets an answer (not 503)."""
    await _wait_until(lambda: served.server.connection_count == 0)
    async with await served.connect(version) as connection:
        with anyio.fail_after(10):
            response = await fetch(connection, "GET", "/")
    assert response.status == 200


async def _dribble_until_closed(raw: ByteStream, data: bytes, pace: float) -> bytes:
    """Send ``data`` a byte at a time until the server closes; what it sent."""
    received = bytearray()
    closed = False

    async def read() -> None:
        nonlocal closed
        # Bounded: the server closes the connection (the test's deadline).
        while True:
            try:
                received.extend(await raw.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError, NetworkError):
                closed = True
                return

    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            group.start_soon(read)
            for index in range(len(data)):
                try:
                    await raw.send(data[index : index + 1])
                except (
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                    NetworkError,
                ):
                    break
                await anyio.sleep(pace)
                if closed:
                    break
    assert closed, "the server kept the dribbling connection open"
    return bytes(received)


# -- HTTP/1.1 ---------------------------------------------------------------------


async def test_http1_head_dribble_is_dropped(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, limits=LIMITS, networking=networking
    ) as served:
        raw = await networking.connect_tcp(("127.0.0.1", served.http_port))
        async with raw:
            head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 2000
            answer = await _dribble_until_closed(raw, head, HEAD_PACE)
        # No request was served, and the slot is free again.
        assert b"200" not in answer
        await _served_afterwards(served, "1.1")


async def test_http1_body_dribble_is_dropped(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, limits=LIMITS, networking=networking
    ) as served:
        raw = await networking.connect_tcp(("127.0.0.1", served.http_port))
        async with raw:
            await raw.send(
                b"POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
            )
            answer = await _dribble_until_closed(raw, b"b" * 1000, BODY_PACE)
        assert answer.startswith(b"HTTP/1.1 408 ")
        await _served_afterwards(served, "1.1")


# -- HTTP/2 -----------------------------------------------------------------------


async def test_http2_head_dribble_is_dropped(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, limits=LIMITS, networking=networking
    ) as served:
        raw = await networking.connect_tcp(("127.0.0.1", served.http_port))
        async with raw:
            h2c = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding=None)
            )
            h2c.initiate_connection()
            await raw.send(h2c.data_to_send())
            h2c.send_headers(
                1,
                [
                    (b":method", b"GET"),
                    (b":scheme", b"http"),
                    (b":authority", b"x"),
                    (b":path", b"/"),
                    (b"x-slow", b"a" * 2000),
                ],
                end_stream=True,
            )
            await _dribble_until_closed(raw, h2c.data_to_send(), HEAD_PACE)
        await _served_afterwards(served, "h2c")


@pytest.mark.parametrize("version", ["2", "h2c", "3"])
async def test_multiplexed_body_dribble_is_dropped(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, limits=LIMITS, networking=networking
    ) as served:
        async with await served.connect(version) as connection:
            stream = await connection.open_stream(
                request_headers("POST", "/digest", ((b"content-length", b"1000"),))
            )
            events: list[object] = []

            async def dribble() -> None:
                # Bounded: 1000 bytes, or the server gives the stream up.
                for _ in range(1000):
                    try:
                        await stream.send_data(b"b")
                    except (StreamReset, NetworkError):
                        return
                    await anyio.sleep(BODY_PACE)

            async def read() -> None:
                # Bounded: the server answers, then ends or resets the stream.
                while True:
                    event = await stream.receive_event()
                    events.append(event)
                    if isinstance(event, StreamResetReceived) or (
                        isinstance(event, HeadersReceived | DataReceived)
                        and event.end_stream
                    ):
                        return

            async with stream:
                with anyio.fail_after(15):
                    async with anyio.create_task_group() as group:
                        group.start_soon(dribble)
                        await read()
                        group.cancel_scope.cancel()
            # The stream is over; the idle connection is then closed.
            await _wait_until(lambda: served.server.connection_count == 0)
        first = events[0]
        assert isinstance(first, HeadersReceived)
        assert dict(first.headers)[b":status"] == b"408"
        await _served_afterwards(served, version)


# -- HTTP/3 -----------------------------------------------------------------------


async def test_http3_head_dribble_is_dropped(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, limits=LIMITS, networking=networking
    ) as served:
        address = ("127.0.0.1", served.https_port)
        udp = await networking.connect_udp(address)
        configuration = QuicConfiguration(
            is_client=True, alpn_protocols=["h3"], server_name="localhost"
        )
        configuration.verify_mode = ssl.CERT_NONE
        quic = QuicConnection(configuration=configuration)
        quic.connect(address, now=time.monotonic())
        # The server's CONNECTION_CLOSE is not awaited: what counts is that
        # the server dropped the connection and its slot.
        state = {"ready": False, "closed": False}

        async def flush() -> None:
            for data, _ in quic.datagrams_to_send(now=time.monotonic()):
                await udp.send(Datagram(data, address))

        async def pump() -> None:
            # Bounded: the server ends the connection (the test's deadline).
            while not state["closed"]:
                timer = quic.get_timer()
                wait = 0.05 if timer is None else max(0.0, timer - time.monotonic())
                with anyio.move_on_after(min(wait, 0.05)):
                    datagram = await udp.receive()
                    quic.receive_datagram(datagram.data, address, now=time.monotonic())
                if timer is not None and time.monotonic() >= timer:
                    quic.handle_timer(now=time.monotonic())
                # Bounded by the events aioquic queued.
                while (event := quic.next_event()) is not None:
                    if isinstance(event, HandshakeCompleted):
                        state["ready"] = True
                    elif isinstance(event, ConnectionTerminated):
                        state["closed"] = True
                await flush()

        async with udp:
            with anyio.fail_after(15):
                async with anyio.create_task_group() as group:
                    await flush()
                    group.start_soon(pump)
                    await _wait_until(lambda: state["ready"])
                    H3Connection(quic)  # its control and QPACK streams
                    stream_id = quic.get_next_available_stream_id()
                    # A HEADERS frame (type 1) announcing 2000 bytes, which
                    # come a byte at a time and never all.
                    head = b"\x01\x47\xd0" + b"\x00" * 2000
                    sent_after_drop = 0
                    for index in range(len(head)):
                        # Ten bytes more once the server dropped the
                        # connection: they must not bring it back.
                        if served.server.connection_count == 0:
                            sent_after_drop += 1
                            if sent_after_drop > 10:
                                break
                        try:
                            quic.send_stream_data(stream_id, head[index : index + 1])
                        except (RuntimeError, ValueError):
                            # The server refused the stream at its GOAWAY
                            # (H3_REQUEST_REJECTED): aioquic reset our side
                            # (RuntimeError), or forgot the stream already.
                            pass
                        await flush()
                        await anyio.sleep(HEAD_PACE)
                    group.cancel_scope.cancel()
        assert sent_after_drop > 10, "the server kept the dribbling connection"
        await _served_afterwards(served, "3")
