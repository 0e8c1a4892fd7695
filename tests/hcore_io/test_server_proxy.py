"""ProxyServer: CONNECT tunnels over every HTTP version, and its refusals.

Every test runs on asyncio and Trio.  The tunnels lead to an ASGIServer's
plain HTTP/1.1 port, spoken to with raw bytes through the tunnel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols.http1 import HTTP1ClientFactory
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore.protocols.http3 import HTTP3ClientFactory
from hcore_io.connections import (
    HTTPConnection,
    HTTPOverQUICOpener,
    HTTPOverTCPOpener,
    HTTPStream,
)
from hcore_io.server import ProxyServer, parse_authority

from .conftest import SocketBackend
from .server_apps import app
from .server_helpers import VERSIONS, fetch, running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@asynccontextmanager
async def proxying(
    server_tls: ServerTLSConfig, *, networking: SocketBackend, **options: object
) -> AsyncIterator[tuple[int, int]]:
    """Run a proxy on http and https over ``networking``; yield its two ports."""
    proxy = ProxyServer(
        tls_config=server_tls,
        networking=networking,
        client_networking=networking,
        **options,  # type: ignore[arg-type]
    )
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
    *,
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


def _connect_headers(authority: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b":method", b"CONNECT"), (b":authority", authority.encode()))


async def _status(stream: HTTPStream) -> int:
    with anyio.fail_after(10):
        event = await stream.receive_event()
    assert isinstance(event, HeadersReceived), event
    return int(dict(event.headers)[b":status"])


async def _read_until(stream: HTTPStream, marker: bytes) -> bytes:
    received = b""
    with anyio.fail_after(10):
        # Bounded: stops at the marker or at the stream's end.
        async for event in stream:
            if isinstance(event, DataReceived):
                received += event.data
                if marker in received:
                    break
    return received


def test_parse_authority() -> None:
    assert parse_authority(b"example.com:443") == ("example.com", 443)
    assert parse_authority(b"[::1]:8080") == ("::1", 8080)
    for bad in (
        b"example.com",
        b":80",
        b"x:0",
        b"x:70000",
        b"::1:80",
        b"[::1:80",
        b"\xff:1",
    ):
        assert parse_authority(bad) is None


@pytest.mark.parametrize("version", VERSIONS)
async def test_tunnel_to_an_http_server(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as upstream:
        async with proxying(server_tls_config, networking=networking) as ports:
            connection = await _connect(
                version, ports, client_tls_config, networking=networking
            )
            async with connection:
                target = f"127.0.0.1:{upstream.http_port}"
                stream = await connection.open_stream(_connect_headers(target))
                async with stream:
                    assert await _status(stream) == 200
                    # One request at a time: hcore's HTTP/1.1 server does not
                    # answer pipelined requests yet (reported).
                    await stream.send_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    received = await _read_until(stream, b"hello")
                    assert received.startswith(b"HTTP/1.1 200 ")
                    await stream.send_data(b"GET /stream/3 HTTP/1.1\r\nHost: x\r\n\r\n")
                    received = await _read_until(stream, b"C" * 1024)
                    assert received.startswith(b"HTTP/1.1 200 ")
                    # The client ends its side: the target sees EOF and closes.
                    await stream.send_data(
                        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        end_stream=True,
                    )
                    rest = await _read_until(stream, b"never sent")
                    assert rest.endswith(b"hello")


@pytest.mark.parametrize("version", VERSIONS)
async def test_refusals(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    closed = await anyio.create_tcp_listener(local_host="127.0.0.1")
    closed_port = closed.extra(anyio.abc.SocketAttribute.local_port)
    await closed.aclose()
    async with proxying(
        server_tls_config, allowed_ports=[closed_port, 1], networking=networking
    ) as ports:
        connection = await _connect(
            version, ports, client_tls_config, networking=networking
        )
        async with connection:
            statuses = []
            for authority in (f"127.0.0.1:{closed_port}", "127.0.0.1:2"):
                stream = await connection.open_stream(_connect_headers(authority))
                async with stream:
                    statuses.append(await _status(stream))
                if version == "1.1":
                    # The refused tunnel's request ends the exchange.
                    await connection.aclose()
                    connection = await _connect(
                        version, ports, client_tls_config, networking=networking
                    )
            plain = await fetch(connection, "GET", "/")
            await connection.aclose()
    assert statuses == [502, 403]
    assert plain.status == 405
    assert plain.header(b"allow") == b"CONNECT"


@pytest.mark.parametrize("version", ["2", "3"])
async def test_client_reset_ends_the_tunnel_only(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as upstream:
        async with proxying(server_tls_config, networking=networking) as ports:
            connection = await _connect(
                version, ports, client_tls_config, networking=networking
            )
            async with connection:
                target = f"127.0.0.1:{upstream.http_port}"
                first = await connection.open_stream(_connect_headers(target))
                assert await _status(first) == 200
                await first.send_stream_reset()
                await first.aclose()
                second = await connection.open_stream(_connect_headers(target))
                async with second:
                    assert await _status(second) == 200
                    await second.send_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert b"hello" in await _read_until(second, b"hello")
            # Polled: the server's connection count signals nothing.
            for _ in range(100):
                if not upstream.server.connection_count:
                    break
                await anyio.sleep(0.05)
            assert upstream.server.connection_count == 0


@pytest.mark.parametrize("version", VERSIONS)
async def test_proxy_refuses_requests_that_are_not_connect(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with proxying(server_tls_config, networking=networking) as ports:
        connection = await _connect(
            version, ports, client_tls_config, networking=networking
        )
        async with connection:
            response = await fetch(connection, "POST", "/", b"x")
    assert response.status == 405
    assert response.header(b"allow") == b"CONNECT"
