"""ProxyServer's ``connect_timeout`` crossed through real sockets.

A CONNECT names a loopback target whose accept queue is full (a listening
socket with backlog 0 and one connection never accepted: Linux drops the
next SYN, so the proxy's TCP handshake never completes).  With
``connect_timeout=0.3`` the proxy answers 504, over HTTP/1.1, HTTP/2 (TLS
and h2c) and HTTP/3, not before the bound and long before the 10 s
default.  On HTTP/2 and HTTP/3 the same connection then tunnels to a live
target: the timeout cost one stream only.  Every test runs on asyncio and
Trio, on both socket backends (the proxy's listeners, its connections to
targets and the client all use the backend under test).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute

from hcore import Address, ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols.http1 import HTTP1ClientFactory
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore.protocols.http3 import HTTP3ClientFactory
from hcore_io import Limits
from hcore_io.connections import (
    HTTPConnection,
    HTTPOverQUICOpener,
    HTTPOverTCPOpener,
    HTTPStream,
)
from hcore_io.server import ProxyServer

from .conftest import SocketBackend
from .server_helpers import VERSIONS

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

_CONNECT_TIMEOUT = 0.3
# Far below the 10 s default: a proxy that ignored the bound would miss it.
_ANSWER_WITHIN = 5.0


@pytest.fixture
def unreachable() -> Iterator[Address]:
    """A loopback address whose accept queue is full: connecting hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    host, port = server.getsockname()
    filler = socket.socket()
    filler.connect((host, port))
    try:
        yield host, port
    finally:
        filler.close()
        server.close()


@asynccontextmanager
async def _echo_target(networking: SocketBackend) -> AsyncIterator[int]:
    """A TCP echo server on loopback; yield its port."""
    listener = await networking.listen_tcp(("127.0.0.1", 0))

    async def echo(stream: ByteStream) -> None:
        async with stream:
            try:
                # Bounded by what the client sends.
                while True:
                    await stream.send(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, echo)
        try:
            yield listener.extra(SocketAttribute.local_port)
        finally:
            await listener.aclose()
            group.cancel_scope.cancel()


@asynccontextmanager
async def _proxy(
    server_tls: ServerTLSConfig, networking: SocketBackend
) -> AsyncIterator[tuple[int, int]]:
    """A proxy with a 0.3 s connect timeout; yield its http and https ports."""
    proxy = ProxyServer(
        tls_config=server_tls,
        networking=networking,
        client_networking=networking,
        limits=Limits(connect_timeout=_CONNECT_TIMEOUT),
    )
    assert proxy.limits.connect_timeout == _CONNECT_TIMEOUT
    async with anyio.create_task_group() as group:
        http, https = await group.start(
            proxy.serve, ["http://127.0.0.1:0", "https://127.0.0.1:0"]
        )
        try:
            yield http.port, https.port
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await proxy.shutdown(timeout=1)
            group.cancel_scope.cancel()


async def _connect(
    version: str,
    ports: tuple[int, int],
    client_tls: ClientTLSConfig,
    networking: SocketBackend,
) -> HTTPConnection:
    http_port, https_port = ports
    if version == "3":
        return await HTTPOverQUICOpener(
            HTTP3ClientFactory(), networking=networking, tls_config=client_tls
        )(("127.0.0.1", https_port), server_name="localhost")
    factory = HTTP1ClientFactory() if version == "1.1" else HTTP2ClientFactory()
    opener = HTTPOverTCPOpener(factory, networking=networking, tls_config=client_tls)
    if version == "h2c":
        return await opener(("127.0.0.1", http_port), tls=False)
    return await opener(("127.0.0.1", https_port), server_name="localhost")


async def _tunnel_status(connection: HTTPConnection, target: Address) -> int:
    """Ask for a tunnel; return the proxy's status (the stream stays open)."""
    authority = f"{target[0]}:{target[1]}".encode()
    stream = await connection.open_stream(
        ((b":method", b"CONNECT"), (b":authority", authority))
    )
    async with stream:
        event = await stream.receive_event()
        assert isinstance(event, HeadersReceived), event
        return int(dict(event.headers)[b":status"])


async def _echo_through(stream: HTTPStream, data: bytes) -> bytes:
    await stream.send_data(data)
    received = b""
    # Bounded: stops once the echo is whole, or at the stream's end.
    async for event in stream:
        if isinstance(event, DataReceived):
            received += event.data
            if len(received) >= len(data) or event.end_stream:
                break
    return received


@pytest.mark.parametrize("version", VERSIONS)
async def test_connect_to_a_target_that_never_answers_gets_504(
    version: str,
    unreachable: Address,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with (
        _echo_target(networking) as echo_port,
        _proxy(server_tls_config, networking) as ports,
    ):
        connection = await _connect(version, ports, client_tls_config, networking)
        async with connection:
            started = anyio.current_time()
            with anyio.fail_after(_ANSWER_WITHIN):
                status = await _tunnel_status(connection, unreachable)
            elapsed = anyio.current_time() - started
            assert status == 504
            # The proxy waited for the bound, not less (a little slack for
            # the clocks' rounding).
            assert elapsed >= _CONNECT_TIMEOUT * 0.9
            if version == "1.1":
                # The refused tunnel's request ended the exchange.
                await connection.aclose()
                connection = await _connect(
                    version, ports, client_tls_config, networking
                )
            # The proxy (on HTTP/2 and HTTP/3 the very connection) still
            # tunnels to a target that answers.
            authority = f"127.0.0.1:{echo_port}".encode()
            with anyio.fail_after(10):
                stream = await connection.open_stream(
                    ((b":method", b"CONNECT"), (b":authority", authority))
                )
                async with stream:
                    head = await stream.receive_event()
                    assert isinstance(head, HeadersReceived), head
                    assert dict(head.headers)[b":status"] == b"200"
                    assert await _echo_through(stream, b"ping") == b"ping"
            await connection.aclose()


@pytest.mark.parametrize("version", ["2", "3"])
async def test_concurrent_timeouts_are_answered_per_stream(
    version: str,
    unreachable: Address,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    """Three CONNECTs in flight on one connection each get their own 504."""
    statuses: list[int] = []
    async with _proxy(server_tls_config, networking) as ports:
        connection = await _connect(version, ports, client_tls_config, networking)
        async with connection:

            async def one() -> None:
                statuses.append(await _tunnel_status(connection, unreachable))

            with anyio.fail_after(_ANSWER_WITHIN):
                async with anyio.create_task_group() as group:
                    for _ in range(3):
                        group.start_soon(one)
    assert statuses == [504, 504, 504]
