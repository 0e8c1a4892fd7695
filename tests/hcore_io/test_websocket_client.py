"""Client.websocket against ASGIServer on HTTP/1.1, HTTP/2 and HTTP/3.

The client picks the version as for any request: HTTP/1.1 on ``ws://``,
HTTP/2 by ALPN on ``wss://`` (extended CONNECT), HTTP/3 when the pool uses
it, HTTP/1.1 again when an HTTP/2 server does not accept extended CONNECT.
Several WebSockets share one HTTP/2 or HTTP/3 connection, which the pool's
metrics show.  Every test runs on asyncio and Trio, on both socket backends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io import ConnectError
from hcore_io.client import (
    Client,
    ConnectionState,
    WebSocketClosed,
    WebSocketRejected,
)
from hcore_io.networking import EpollNetworking, SystemNetworking
from hcore_io.server import ASGIServer

from .server_helpers import Running, Serve
from .websocket_helpers import WebSocketApp

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


def _url(server: Running, kind: str, path: str) -> str:
    port = server.http_port if kind == "ws" else server.https_port
    host = "127.0.0.1" if kind == "ws" else "localhost"
    return f"{kind}://{host}:{port}{path}"


def _client(served: Running, versions: tuple[str, ...]) -> Client:
    return Client(
        networking=served.networking,
        tls_config=served.client_tls,
        http_versions=versions,
        http2_prior_knowledge=versions == ("2",),
    )


@asynccontextmanager
async def _served(
    serve: Serve, versions: tuple[str, ...], app: WebSocketApp | None = None
) -> AsyncIterator[tuple[Running, Client]]:
    """A WebSocketApp served, and a client of it with the pool's versions."""
    async with (
        serve(app if app is not None else WebSocketApp()) as served,
        _client(served, versions) as client,
    ):
        yield served, client


@pytest.mark.parametrize("setup", SETUPS)
async def test_echo_ping_and_close(setup: str, serve: Serve) -> None:
    versions, kind = SETUPS[setup]
    app = WebSocketApp()
    async with _served(serve, versions, app) as (s, client):
        big = bytes(range(256)) * 4096  # 1 MiB, the default message limit
        with anyio.fail_after(20):
            async with client.websocket(
                _url(s, kind, "/echo"), subprotocols=["chat", "other"]
            ) as ws:
                expected = versions[-1] if setup != "h2c" else "2"
                assert ws.http_version == expected
                assert ws.subprotocol == "chat"
                assert (b"x-app", b"websocket-app") in ws.response_headers
                # permessage-deflate is offered and agreed by default.
                assert any(
                    name == b"sec-websocket-extensions"
                    for name, _ in ws.response_headers
                )
                await ws.send_text("hello ✓")
                assert await ws.receive() == "hello ✓"
                await ws.send_bytes(big)
                assert await ws.receive() == big
                await ws.send(b"")
                assert await ws.receive() == b""
                assert await ws.ping(b"are you there") >= 0
                await ws.close(4001, "bye now")
                assert ws.closed
                assert (ws.close_code, ws.close_reason) == (4001, "")
                with pytest.raises(WebSocketClosed):
                    await ws.send_text("too late")
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 4001
        await app.wait_disconnects(1)
        assert app.disconnects == [("/echo", 4001, "bye now")]


@pytest.mark.parametrize("setup", ("2", "3"))
async def test_websockets_share_one_connection(setup: str, serve: Serve) -> None:
    versions, kind = SETUPS[setup]
    async with _served(serve, versions) as (s, client):
        url = _url(s, kind, "/echo")
        with anyio.fail_after(20):
            async with (
                client.websocket(url) as first,
                client.websocket(url) as second,
                client.websocket(url) as third,
            ):
                sockets = (first, second, third)

                async def talk(index: int) -> None:
                    ws = sockets[index]
                    for round_ in range(20):
                        await ws.send_text(f"{index}:{round_}")
                        assert await ws.receive() == f"{index}:{round_}"

                async with anyio.create_task_group() as group:
                    for index in range(3):
                        group.start_soon(talk, index)
                # A request goes on the same connection meanwhile.
                https = url.replace("wss://", "https://")
                assert (await client.get(https)).status == 500
                metrics = client.pool.metrics
                assert metrics.created == 1
                [connection] = metrics.connections
                assert connection.http_version == setup
                assert connection.requests == 4
                assert connection.state is ConnectionState.ACTIVE
        metrics = client.pool.metrics
        assert metrics.created == 1
        assert metrics.connections[0].state is ConnectionState.IDLE
        assert metrics.connections[0].completed == 4
        assert metrics.connections[0].errors == 0


async def test_several_websockets_over_http1_use_a_connection_each(
    serve: Serve,
) -> None:
    async with _served(serve, ("1.1",)) as (s, client):
        url = _url(s, "ws", "/echo")
        with anyio.fail_after(20):
            async with client.websocket(url) as first, client.websocket(url) as second:
                await first.send_text("a")
                await second.send_text("b")
                assert (await first.receive(), await second.receive()) == ("a", "b")
                assert client.pool.metrics.total_connections == 2
        # An upgraded connection cannot carry requests again: it is closed.
        assert client.pool.metrics.created == 2
        assert client.pool.metrics.total_connections == 0


@pytest.mark.parametrize("setup", ("1.1", "2", "3"))
async def test_server_closes_with_code_and_reason(setup: str, serve: Serve) -> None:
    versions, kind = SETUPS[setup]
    async with _served(serve, versions) as (s, client):
        with anyio.fail_after(20):
            async with client.websocket(_url(s, kind, "/say-bye")) as ws:
                received = []
                with pytest.raises(WebSocketClosed) as closed:
                    # 4000 is not a normal closure: iteration raises.
                    async for message in ws:
                        received.append(message)
                assert received == ["bye"]
                assert (closed.value.code, closed.value.reason) == (4000, "done")
                assert (ws.close_code, ws.close_reason) == (4000, "done")
            # Normal closure ends the iteration quietly.
            async with client.websocket(_url(s, kind, "/echo")) as ws:
                await ws.send_text("close 1000 finished")
                assert [message async for message in ws] == []
                assert (ws.close_code, ws.close_reason) == (1000, "finished")


@pytest.mark.parametrize("setup", ("1.1", "2", "3"))
@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/deny", 401, b"no entry"),
        ("/reject", 403, b"Forbidden\n"),
        ("/crash", 500, b"Internal Server Error\n"),
    ],
)
async def test_refusal_raises(
    setup: str, path: str, status: int, body: bytes, serve: Serve
) -> None:
    versions, kind = SETUPS[setup]
    async with _served(serve, versions) as (s, client):
        with anyio.fail_after(20), pytest.raises(WebSocketRejected) as refused:
            async with client.websocket(_url(s, kind, path)):
                pass
        assert refused.value.status == status
        assert refused.value.body == body
        # The connection stays in the pool (HTTP/1.1: no upgrade happened).
        [connection] = client.pool.metrics.connections
        assert (connection.errors, connection.completed) == (1, 1)


async def test_scope_of_the_client_request(serve: Serve) -> None:
    async with _served(serve, ("1.1", "2")) as (s, client):
        url = _url(s, "wss", "/scope?x=1")
        with anyio.fail_after(20):
            async with client.websocket(
                url, headers=[(b"X-Token", b"secret")], subprotocols=["v2"]
            ) as ws:
                scope = json.loads(await ws.receive())
        assert scope["scheme"] == "wss"
        assert scope["http_version"] == "2"
        assert scope["path"] == "/scope"
        assert scope["query_string"] == "x=1"
        assert scope["subprotocols"] == ["v2"]
        assert scope["headers"]["x-token"] == "secret"


class _NoExtendedConnect(ASGIServer):
    """An HTTP/2 server that does not accept extended CONNECT."""

    _extended_connect = False


async def test_http2_server_without_extended_connect_gets_an_upgrade(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    server = _NoExtendedConnect(
        WebSocketApp(), tls_config=server_tls_config, networking=networking, http3=False
    )
    async with (
        anyio.create_task_group() as group,
        Client(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=("1.1", "2"),
        ) as client,
    ):
        [endpoint] = await group.start(server.serve, ["https://127.0.0.1:0"])
        url = f"wss://localhost:{endpoint.port}/echo"
        with anyio.fail_after(20):
            async with client.websocket(url) as ws:
                assert ws.http_version == "1.1"
                await ws.send_text("over an upgrade")
                assert await ws.receive() == "over an upgrade"
            # Asking for HTTP/2 fails instead.
            with pytest.raises(ConnectError):
                async with client.websocket(url, http_version="2"):
                    pass
        await server.shutdown(timeout=1)


async def test_http_version_asked_for(serve: Serve) -> None:
    async with _served(serve, ("1.1", "2")) as (s, client):
        url = _url(s, "wss", "/echo")
        with anyio.fail_after(20):
            async with client.websocket(url, http_version="1.1") as ws:
                assert ws.http_version == "1.1"
                await ws.send_text("one")
                assert await ws.receive() == "one"
            async with client.websocket(url, http_version="2") as ws:
                assert ws.http_version == "2"
            with pytest.raises(ConnectError):
                async with client.websocket(url, http_version="3"):
                    pass
        with pytest.raises(ValueError, match="not a WebSocket URL"):
            client.websocket("ftp://localhost/")
        with pytest.raises(ValueError, match="unknown HTTP version"):
            async with client.websocket(url, http_version="4"):
                pass


@pytest.mark.parametrize("setup", ("1.1", "2", "3"))
async def test_message_over_the_client_limit_closes_with_1009(
    setup: str, serve: Serve
) -> None:
    versions, kind = SETUPS[setup]
    app = WebSocketApp()
    async with _served(serve, versions, app) as (s, client):
        with anyio.fail_after(20):
            async with client.websocket(
                _url(s, kind, "/big?5000"), max_message_size=4096, deflate=False
            ) as ws:
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 1009
        await app.wait_disconnects(1)
        assert app.disconnects[0][:2] == ("/big", 1009)


async def test_failure_in_the_block_closes_with_1011(serve: Serve) -> None:
    app = WebSocketApp()
    async with _served(serve, ("1.1", "2"), app) as (s, client):
        with anyio.fail_after(20), pytest.raises(KeyError):
            async with client.websocket(_url(s, "wss", "/echo")):
                raise KeyError("the caller's own error")
        await app.wait_disconnects(1)
        assert app.disconnects == [("/echo", 1011, "")]


async def test_cancelled_receive_loses_nothing(serve: Serve) -> None:
    async with _served(serve, ("1.1", "2")) as (s, client):
        with anyio.fail_after(20):
            async with client.websocket(_url(s, "wss", "/echo")) as ws:
                with anyio.move_on_after(0.05):
                    await ws.receive()
                await ws.send_text("still open")
                assert await ws.receive() == "still open"


async def test_client_misuse(serve: Serve) -> None:
    async with _served(serve, ("1.1", "2")) as (s, client):
        with anyio.fail_after(20):
            async with client.websocket(_url(s, "wss", "/echo")) as ws:
                with pytest.raises(ValueError, match="125 bytes"):
                    await ws.ping(b"x" * 126)
                with pytest.raises(ValueError, match="may not be sent"):
                    await ws.close(1005)
                await ws.send("text by send()")
                assert await ws.receive() == "text by send()"
                await ws.close()
                await ws.close()  # again: nothing happens
                with pytest.raises(WebSocketClosed):
                    await ws.ping()
                with pytest.raises(WebSocketClosed):
                    await ws.send_bytes(b"late")
                assert [message async for message in ws] == []


@pytest.mark.parametrize("setup", ("1.1", "2"))
async def test_leaving_with_unread_messages_closes_cleanly(
    setup: str, serve: Serve
) -> None:
    versions, kind = SETUPS[setup]
    app = WebSocketApp()
    async with _served(serve, versions, app) as (s, client):
        # The close timeout is longer than the test's: a reader stuck on
        # the unread messages would make it fail.
        with anyio.fail_after(20):
            async with client.websocket(_url(s, kind, "/echo"), close_timeout=60) as ws:
                for index in range(50):
                    await ws.send_bytes(b"%d" % index * 1000)
                # Some echoes arrived (and wait, unread).
                assert await ws.receive() == b"0" * 1000
        assert ws.close_code == 1000
        await app.wait_disconnects(1)
        assert app.disconnects == [("/echo", 1000, "")]
