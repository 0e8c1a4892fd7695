"""Server shutdown closes open WebSockets with 1001 (going away).

A graceful shutdown sends each open WebSocket a Close with 1001 (RFC 6455
§7.4.1); the client echoes it, the application receives
``websocket.disconnect`` with 1001, and the closing handshake ends within
the grace period, so nothing is left for the server to cancel.  On HTTP/1.1
(plain and TLS), HTTP/2 (TLS and h2c) and HTTP/3; every test runs on
asyncio and Trio, on both socket backends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.client import Client, WebSocketClosed
from hcore_io.networking import EpollNetworking, SystemNetworking
from hcore_io.server import Message, Receive, Scope, Send

from .server_helpers import Running, running
from .websocket_helpers import RawWebSocket, WebSocketApp, open_raw

pytestmark = pytest.mark.anyio

Networking = SystemNetworking | EpollNetworking
#: (pool versions, URL kind): "ws" plain, "wss" TLS.
SETUPS = {
    "1.1": (("1.1",), "ws"),
    "1.1-tls": (("1.1",), "wss"),
    "2": (("1.1", "2"), "wss"),
    "h2c": (("2",), "ws"),
    "3": (("3",), "wss"),
}
# Long enough that a shutdown waiting for it would hit the test's deadline.
_GRACE = 60.0


def _url(server: Running, kind: str, path: str) -> str:
    port = server.http_port if kind == "ws" else server.https_port
    host = "127.0.0.1" if kind == "ws" else "localhost"
    return f"{kind}://{host}:{port}{path}"


@asynccontextmanager
async def _client(
    networking: Networking, tls: ClientTLSConfig, versions: tuple[str, ...]
) -> AsyncIterator[Client]:
    async with Client(
        networking=networking,
        tls_config=tls,
        http_versions=versions,
        http2_prior_knowledge=versions == ("2",),
    ) as client:
        yield client


def _no_cancellations(caplog: pytest.LogCaptureFixture) -> None:
    busy = [r for r in caplog.records if "still busy" in r.getMessage()]
    assert busy == [], "the server had to cancel connections"


@pytest.mark.parametrize("setup", SETUPS)
async def test_shutdown_closes_websockets_with_1001(
    setup: str,
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hcore.server")
    versions, kind = SETUPS[setup]
    app = WebSocketApp()
    async with (
        running(
            app,
            server_tls_config,
            client_tls_config,
            networking=networking,
            shutdown_timeout=_GRACE,
        ) as s,
        _client(networking, client_tls_config, versions) as client,
    ):
        with anyio.fail_after(20):
            async with client.websocket(_url(s, kind, "/echo")) as ws:
                await ws.send_text("before")
                assert await ws.receive() == "before"
                async with anyio.create_task_group() as group:
                    group.start_soon(s.server.shutdown)
                    with pytest.raises(WebSocketClosed) as closed:
                        await ws.receive()
                assert closed.value.code == 1001
                assert ws.close_code == 1001
                assert ws.close_reason == "server shutting down"
            await app.wait_disconnects(1)
    assert [(path, code) for path, code, _ in app.disconnects] == [("/echo", 1001)]
    _no_cancellations(caplog)


@pytest.mark.parametrize("setup", ("2", "3"))
async def test_shutdown_closes_every_websocket_of_a_shared_connection(
    setup: str,
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hcore.server")
    versions, kind = SETUPS[setup]
    app = WebSocketApp()
    codes: list[int | None] = []
    async with (
        running(
            app,
            server_tls_config,
            client_tls_config,
            networking=networking,
            shutdown_timeout=_GRACE,
        ) as s,
        _client(networking, client_tls_config, versions) as client,
    ):
        opened = anyio.Event()
        count = 0

        async def hold() -> None:
            nonlocal count
            async with client.websocket(_url(s, kind, "/echo")) as ws:
                await ws.send_text("hello")
                assert await ws.receive() == "hello"
                count += 1
                if count == 3:
                    opened.set()
                with pytest.raises(WebSocketClosed):
                    await ws.receive()
                codes.append(ws.close_code)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(hold)
                await opened.wait()
                assert len(client.pool.metrics.connections) == 1
                group.start_soon(s.server.shutdown)
            await app.wait_disconnects(3)
    assert codes == [1001, 1001, 1001]
    assert sorted(code for _, code, _ in app.disconnects) == [1001, 1001, 1001]
    _no_cancellations(caplog)


@pytest.mark.parametrize("version", ("1.1", "2", "3"))
async def test_shutdown_close_frame_on_the_wire(
    version: str,
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    # A hand-made client that does not answer the Close: the server still
    # sends 1001, and the shutdown ends within its (short) grace period.
    app = WebSocketApp()
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as s:
        connection = await s.connect(version)
        try:
            raw: RawWebSocket = await open_raw(connection, "/echo")
            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    group.start_soon(s.server.shutdown, 2.0)
                    assert await raw.close_code() == 1001
        finally:
            with anyio.CancelScope(shield=True):
                await connection.aclose()


async def test_websocket_accepted_during_shutdown_is_closed_with_1001(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    # The application accepts only after the shutdown began.
    shutting_down = anyio.Event()
    connected = anyio.Event()
    disconnects: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        assert (await receive())["type"] == "websocket.connect"
        connected.set()
        await shutting_down.wait()
        await send({"type": "websocket.accept"})
        # Bounded: the Close handshake ends the WebSocket.
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                disconnects.append(message)
                return

    async with (
        running(
            app,
            server_tls_config,
            client_tls_config,
            networking=networking,
            shutdown_timeout=_GRACE,
        ) as s,
        _client(networking, client_tls_config, ("1.1", "2")) as client,
    ):
        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:

                async def shut_down() -> None:
                    await connected.wait()
                    group.start_soon(s.server.shutdown)
                    # Bounded by the fail_after: the drain begins at once.
                    while not s.server._is_closing():  # noqa: ASYNC110 (no event)
                        await anyio.sleep(0.01)
                    shutting_down.set()

                group.start_soon(shut_down)
                async with client.websocket(_url(s, "wss", "/late")) as ws:
                    with pytest.raises(WebSocketClosed):
                        await ws.receive()
                    assert ws.close_code == 1001
    assert [m["code"] for m in disconnects] == [1001]
