"""Client WebSockets get what the pool gives requests: retries and fallback.

A WebSocket whose handshake fails on a stale pooled HTTP/1.1 connection
(the server closed it, unseen by the idle check) is opened on a new one; a
WebSocket to an origin whose ``Alt-Svc`` HTTP/3 alternative never answers
goes over TCP; the pool's books count each WebSocket as a request and
retire an upgraded HTTP/1.1 connection.  Every test runs on asyncio and
Trio, on both socket backends.
"""

from __future__ import annotations

import socket

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.client import URL, Client, ConnectionPool, ConnectionState
from hcore_io.client import _books as books
from hcore_io.client._clock import now as pool_clock
from hcore_io.networking import EpollNetworking, SystemNetworking
from hcore_io.server import Receive, Scope, Send

from .server_helpers import running
from .websocket_helpers import WebSocketApp

pytestmark = pytest.mark.anyio

Networking = SystemNetworking | EpollNetworking


def _unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class _App(WebSocketApp):
    """WebSocketApp, and ``200 ok`` (with ``alt-svc``, if set) for requests."""

    alt_svc: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        headers = [(b"content-type", b"text/plain")]
        if self.alt_svc is not None:
            headers.append((b"alt-svc", self.alt_svc))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("http_version", (None, "1.1"))
@pytest.mark.parametrize("tls", (False, True))
async def test_websocket_retried_on_a_stale_http1_connection(
    http_version: str | None,
    tls: bool,
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _App()
    async with (
        running(
            app,
            server_tls_config,
            client_tls_config,
            networking=networking,
            keep_alive_timeout=0.2,
        ) as s,
        Client(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=("1.1",),
        ) as client,
    ):
        base = (
            f"https://localhost:{s.https_port}"
            if tls
            else f"http://127.0.0.1:{s.http_port}"
        )
        response = await client.get(base + "/")
        assert response.content == b"ok"
        pool = client.pool
        [idle] = pool.metrics.connections
        assert idle.state is ConnectionState.IDLE
        # The server closes the idle connection (keep-alive timeout); the
        # pool's idle check is made blind to it: the race the retry is for.
        monkeypatch.setattr(books, "looks_closed", lambda connection: False)
        with anyio.fail_after(10):
            # Bounded by the timeout: the server's keep-alive timeout is short.
            while s.server.connection_count:  # noqa: ASYNC110 (no event)
                await anyio.sleep(0.05)
            ws_url = base.replace("http", "ws", 1) + "/echo"
            async with client.websocket(ws_url, http_version=http_version) as ws:
                assert ws.http_version == "1.1"
                await ws.send_text("fresh")
                assert await ws.receive() == "fresh"
        metrics = pool.metrics
        # The stale connection and the upgraded one are both closed.
        assert (metrics.requests, metrics.created, metrics.closed) == (2, 2, 2)
        assert metrics.connections == []
        await app.wait_disconnects(1)
        assert [code for _, code, _ in app.disconnects] == [1000]


async def test_websocket_falls_back_to_tcp_when_http3_is_silent(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    app = _App()
    # Nobody listens on this UDP port: QUIC hears nothing back.
    port = _unused_udp_port()
    app.alt_svc = f'h3=":{port}"; ma=60'.encode()
    pool = ConnectionPool(
        networking, tls_config=client_tls_config, quic_connect_timeout=0.5
    )
    async with (
        running(
            app,
            server_tls_config,
            client_tls_config,
            networking=networking,
            http3=False,
        ) as s,
        Client(pool=pool) as client,
    ):
        response = await client.get(f"https://localhost:{s.https_port}/")
        assert response.http_version == "2"
        origin = URL(f"https://localhost:{s.https_port}/").origin
        cache = pool.alt_svc
        assert cache is not None
        assert cache.lookup(origin, pool_clock()) == port
        with anyio.fail_after(20):
            async with client.websocket(f"wss://localhost:{s.https_port}/echo") as ws:
                assert ws.http_version == "2"
                await ws.send_text("over tcp")
                assert await ws.receive() == "over tcp"
        # RFC 7838 §2.4: the alternative is marked broken.
        assert cache.lookup(origin, pool_clock()) is None
        versions = {c.http_version for c in pool.metrics.connections}
        assert versions == {"2"}
        assert pool.metrics.requests == 2
    await pool.aclose()


async def test_websocket_books_on_a_shared_http2_connection(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    app = _App()
    async with (
        running(app, server_tls_config, client_tls_config, networking=networking) as s,
        Client(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=("1.1", "2"),
        ) as client,
    ):
        pool = client.pool
        with anyio.fail_after(20):
            async with client.websocket(f"wss://localhost:{s.https_port}/echo") as ws:
                [connection] = pool.metrics.connections
                assert connection.state is ConnectionState.ACTIVE
                response = await client.get(f"https://localhost:{s.https_port}/")
                assert response.content == b"ok"
                await ws.close(1000)
            async with client.websocket(
                f"wss://localhost:{s.https_port}/crash-after"
            ) as ws:
                with pytest.raises(Exception, match="1011"):
                    await ws.receive()
        [connection] = pool.metrics.connections
        assert connection.http_version == "2"
        assert (connection.requests, connection.completed) == (3, 3)
        # The WebSocket closed with 1011 counts as failed.
        assert connection.errors == 1
        assert connection.state is ConnectionState.IDLE
        assert (pool.metrics.requests, pool.metrics.created) == (3, 1)
