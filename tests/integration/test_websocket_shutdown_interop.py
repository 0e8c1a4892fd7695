"""Server shutdown seen by a third-party WebSocket client.

The ``websockets`` library's client, connected to our server over HTTP/1.1
(plain and TLS), receives a Close with 1001 (going away, RFC 6455 §7.4.1)
when the server shuts down gracefully, answers it, and the application
sees ``websocket.disconnect`` with 1001.  The client runs in a worker thread
(its sync API), so the tests run on asyncio and Trio alike, and on both
socket backends.
"""

from __future__ import annotations

import ssl

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.networking import EpollNetworking, SystemNetworking
from tests.hcore_io.server_helpers import running
from tests.hcore_io.websocket_helpers import WebSocketApp

pytestmark = pytest.mark.anyio

Networking = SystemNetworking | EpollNetworking


@pytest.mark.parametrize("scheme", ("ws", "wss"))
async def test_websockets_client_sees_1001_on_shutdown(
    scheme: str,
    networking: Networking,
    tls_ca: trustme.CA,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    app = WebSocketApp()
    talking = anyio.Event()
    async with running(
        app,
        server_tls_config,
        client_tls_config,
        networking=networking,
        http3=False,
        shutdown_timeout=60.0,
    ) as server:
        port = server.http_port if scheme == "ws" else server.https_port
        url = f"{scheme}://localhost:{port}/echo"
        context: ssl.SSLContext | None = None
        if scheme == "wss":
            context = ssl.create_default_context()
            tls_ca.configure_trust(context)

        def talk() -> tuple[int, str]:
            with connect(url, ssl=context, open_timeout=10) as ws:
                ws.send("hello")
                assert ws.recv(timeout=10) == "hello"
                anyio.from_thread.run_sync(talking.set)
                try:
                    ws.recv(timeout=20)
                except ConnectionClosed as closed:
                    assert closed.rcvd is not None
                    return closed.rcvd.code, closed.rcvd.reason
            raise AssertionError("the server sent a message, not a Close")

        received: list[tuple[int, str]] = []

        async def client() -> None:
            received.append(await anyio.to_thread.run_sync(talk))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(client)
                await talking.wait()
                await server.server.shutdown()
        assert received == [(1001, "server shutting down")]
        await app.wait_disconnects(1)
        assert [(p, code) for p, code, _ in app.disconnects] == [("/echo", 1001)]
