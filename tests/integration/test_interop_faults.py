"""Faults on real sockets: peers that reset, hang up mid-handshake, talk garbage,
stop reading or never answer.

Each fault is played by a raw socket against our server (which must go on
serving others) and against our client (which must end in a clear
exception).  Every test runs on asyncio and Trio, on 127.0.0.1.
"""

from __future__ import annotations

import socket
import struct
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ClientFactory
from hcore_io import (
    ConnectError,
    ConnectionClosed,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)
from hcore_io.connections import (
    HTTPConnection,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
    PriorKnowledgeHTTPFactory,
)
from tests.hcore_io.conftest import SocketBackend
from tests.hcore_io.connection_helpers import App, fetch, pattern, request_headers

from .interop_peers import our_server

pytestmark = pytest.mark.anyio

Handler = Callable[[ByteStream], Awaitable[None]]


async def _reset(stream: ByteStream) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
    raw = stream.extra(SocketAttribute.raw_socket)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


async def _connect(port: int, *, networking: SocketBackend) -> ByteStream:
    return await networking.connect_tcp(("127.0.0.1", port))


async def _still_serves(
    port: int, *, tls: bool, client_tls: ClientTLSConfig, networking: SocketBackend
) -> None:
    """Our client gets a good answer from the server on ``port``."""
    opener = HTTPOverTCPOpener(
        HTTP2ClientFactory(), networking=networking, tls_config=client_tls
    )
    async with await opener(("localhost", port), tls=tls) as connection:
        response = await fetch(connection, "GET", "/bytes/13")
        assert response.body == pattern(13)


@asynccontextmanager
async def _raw_server(
    handler: Handler, *, networking: SocketBackend
) -> AsyncIterator[int]:
    """A misbehaving server on 127.0.0.1 over ``networking``; yields its port."""

    async def closing(stream: ByteStream) -> None:
        async with stream:
            await handler(stream)

    listener = await networking.listen_tcp(("127.0.0.1", 0))
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, closing)
        address = listener.extra(SocketAttribute.local_address)
        assert isinstance(address, tuple)
        try:
            yield address[1]
        finally:
            group.cancel_scope.cancel()


async def _read_request(stream: ByteStream) -> bytes:
    request = b""
    # Bounded: a request head is short.
    while b"\r\n\r\n" not in request and len(request) < 65536:
        request += await stream.receive()
    return request


# -- faults against our server -------------------------------------------------


async def test_server_survives_a_client_reset_mid_body(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(20):
        async with our_server(server_tls_config, networking=networking) as server:
            raw = await _connect(server.http_port, networking=networking)
            head = (
                b"POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
            )
            await raw.send(head + pattern(65536))
            await _reset(raw)
            await server.app.failed.wait()
            assert isinstance(server.app.errors[0], ConnectionClosed)
            await _still_serves(
                server.http_port,
                tls=False,
                client_tls=client_tls_config,
                networking=networking,
            )


async def test_server_survives_a_client_gone_during_the_tls_handshake(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    # The start of a TLS ClientHello record, and then nothing.
    client_hello_start = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(20)
    with anyio.fail_after(20):
        async with our_server(server_tls_config, networking=networking) as server:
            for payload in (client_hello_start, b"GET / HTTP/1.1\r\n\r\n"):
                raw = await _connect(server.https_port, networking=networking)
                await raw.send(payload)
                if payload is client_hello_start:
                    await raw.aclose()
                else:
                    # Plain HTTP to the TLS port: the handshake fails, and
                    # the server hangs up.
                    with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                        # Bounded: the server closes after its alert.
                        while True:
                            await raw.receive()
                    await raw.aclose()
            await _still_serves(
                server.https_port,
                tls=True,
                client_tls=client_tls_config,
                networking=networking,
            )


async def test_server_answers_garbage_and_goes_on(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(20):
        async with our_server(server_tls_config, networking=networking) as server:
            raw = await _connect(server.http_port, networking=networking)
            await raw.send(b"\x00\x01\x02 garbage \xff\r\n\r\n")
            answer = b""
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                # Bounded: the server answers 400 and closes.
                while True:
                    answer += await raw.receive()
            assert answer.startswith(b"HTTP/1.1 400 ")
            await raw.aclose()
            # Garbage in UDP datagrams is dropped by the QUIC listener.
            async with await anyio.create_connected_udp_socket(
                "127.0.0.1", server.quic_port
            ) as udp:
                for size in (1, 100, 1200):
                    await udp.send(b"\xc0" + bytes(size))
            opener = HTTPOverQUICOpener(
                HTTP3ClientFactory(),
                tls_config=client_tls_config,
                networking=networking,
            )
            async with await opener(("localhost", server.quic_port)) as connection:
                response = await fetch(connection, "GET", "/bytes/13")
                assert response.body == pattern(13)
            await _still_serves(
                server.http_port,
                tls=False,
                client_tls=client_tls_config,
                networking=networking,
            )


async def test_server_writes_wait_for_a_client_that_stops_reading(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(30):
        async with our_server(server_tls_config, networking=networking) as server:
            raw = await _connect(server.http_port, networking=networking)
            await raw.send(b"GET /bytes/16777216 HTTP/1.1\r\nHost: x\r\n\r\n")
            await raw.receive()  # the answer has begun; now nothing is read
            tracemalloc.start()
            try:
                await anyio.sleep(0.5)
                # Others are served while that write waits.
                await _still_serves(
                    server.http_port,
                    tls=False,
                    client_tls=client_tls_config,
                    networking=networking,
                )
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            # Socket buffers and one 1 MiB piece, not the 16 MiB answer.
            assert peak < 6 << 20, peak
            await _reset(raw)
            await server.app.failed.wait()
            assert "fail" in str(server.app.errors[0])


async def test_server_drops_a_client_that_never_sends(
    networking: SocketBackend,
) -> None:
    both = PriorKnowledgeHTTPFactory(HTTP1ServerFactory(), HTTP2ServerFactory())
    listener = await HTTPOverTCPListener.create(
        both, networking, local_address=("127.0.0.1", 0), preface_timeout=0.3
    )
    port = listener.local_addresses[0][1]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, App())
            silent = await _connect(port, networking=networking)
            await _still_serves(
                port, tls=False, client_tls=ClientTLSConfig(), networking=networking
            )
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await silent.receive()
            await silent.aclose()
            await listener.aclose()


# -- faults against our client -------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_client_sees_a_server_reset_mid_body(
    version: str, networking: SocketBackend
) -> None:
    async def reset_mid_body(stream: ByteStream) -> None:
        await stream.receive()
        if version == "1.1":
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            await stream.send(bytes(10000))
        await _reset(stream)

    factory = HTTP1ClientFactory() if version == "1.1" else HTTP2ClientFactory()
    with anyio.fail_after(10):
        async with _raw_server(reset_mid_body, networking=networking) as port:
            connection = await HTTPOverTCPOpener(factory, networking=networking)(
                ("127.0.0.1", port), tls=False
            )
            async with connection:
                # The reset can come before or after the request is written.
                with pytest.raises((ConnectionClosed, WriteError)) as caught:
                    await fetch(connection, "GET", "/", scheme="http")
    assert "reset by peer" in str(caught.value) or "closed" in str(caught.value)


async def test_client_sees_a_server_gone_during_the_tls_handshake(
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async def hang_up(stream: ByteStream) -> None:
        await stream.receive()  # the ClientHello
        await stream.aclose()

    opener = HTTPOverTCPOpener(
        HTTP2ClientFactory(), tls_config=client_tls_config, networking=networking
    )
    with anyio.fail_after(10):
        async with _raw_server(hang_up, networking=networking) as port:
            with pytest.raises(ConnectError):
                await opener(("127.0.0.1", port))


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_client_sees_a_server_talking_garbage(
    version: str, networking: SocketBackend
) -> None:
    async def garbage(stream: ByteStream) -> None:
        await stream.receive()
        await stream.send(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x NOT HTTP\r\n\r\n")
        await anyio.sleep(5)

    factory = HTTP1ClientFactory() if version == "1.1" else HTTP2ClientFactory()
    with anyio.fail_after(10):
        async with _raw_server(garbage, networking=networking) as port:
            connection = await HTTPOverTCPOpener(factory, networking=networking)(
                ("127.0.0.1", port), tls=False
            )
            async with connection:
                with pytest.raises(ConnectionClosed, match="terminated"):
                    await fetch(connection, "GET", "/", scheme="http")


async def test_client_writes_wait_for_a_server_that_stops_reading(
    networking: SocketBackend,
) -> None:
    async def never_reads(stream: ByteStream) -> None:
        # One read: anyio's asyncio backend reads an accepted socket eagerly
        # until the first receive(), and pauses it only after that.
        await stream.receive()
        await anyio.sleep(10)

    piece = pattern(1 << 20)
    with anyio.fail_after(20):
        async with _raw_server(never_reads, networking=networking) as port:
            connection = await HTTPOverTCPOpener(
                HTTP1ClientFactory(), networking=networking
            )(("127.0.0.1", port), tls=False)
            async with connection:
                stream = await connection.open_stream(
                    request_headers("POST", "/", scheme="http")
                )
                tracemalloc.start()
                try:
                    with pytest.raises(WriteTimeout):
                        # Bounded: the socket buffers (a few MiB on loopback)
                        # fill long before 256 MiB.
                        for _ in range(256):
                            await stream.send_data(piece, timeout=0.5)
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                # The piece being written and the event loop's buffer.
                assert peak < 6 << 20, peak
                # The request's body was given up half-way: an HTTP/1.1
                # connection cannot go on (a write cut short breaks it at
                # once; one that never began leaves it until the stream is
                # closed).
                await stream.aclose()
                assert connection.has_expired()


async def test_client_read_timeout_when_the_server_never_answers(
    networking: SocketBackend,
) -> None:
    answered = anyio.Event()

    async def silent(stream: ByteStream) -> None:
        await _read_request(stream)
        answered.set()
        await anyio.sleep(10)

    with anyio.fail_after(10):
        async with _raw_server(silent, networking=networking) as port:
            connection: HTTPConnection = await HTTPOverTCPOpener(
                HTTP1ClientFactory(), networking=networking
            )(("127.0.0.1", port), tls=False)
            async with connection:
                stream = await connection.open_stream(
                    request_headers("GET", "/", scheme="http"), end_stream=True
                )
                with pytest.raises(ReadTimeout):
                    await stream.receive_event(timeout=0.5)
                assert answered.is_set()
