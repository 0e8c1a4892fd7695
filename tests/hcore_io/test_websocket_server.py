"""The ASGI websocket scope of ASGIServer, over HTTP/1.1, HTTP/2 and HTTP/3.

Handshakes are run by hand on HTTPConnections (hcore.websocket's client
handshake), so that what goes on the wire is the test's: the scope, the
refusals (400/426 without the application, 403, 500, a denial response),
and frame-level bad input, each closed with the code RFC 6455 §7.4.1
gives: an oversized message 1009, invalid UTF-8 1007, an unmasked client
frame 1002, a bad close code 1002.  Every test runs on asyncio and Trio,
on both socket backends.
"""

from __future__ import annotations

import json
import logging
import struct

import anyio
import pytest

from hcore.events import DataReceived, HeadersReceived
from hcore.websocket import ClientHandshake, TextMessage
from hcore_io import ConnectionClosed
from hcore_io.client import Client, WebSocketClosed, WebSocketRejected
from hcore_io.server import ClientDisconnected, Receive, Scope, Send

from .server_helpers import Serve, fetch, read_response, request_headers
from .websocket_helpers import WebSocketApp, frame, open_raw

pytestmark = pytest.mark.anyio

# Over TLS: HTTP/1.1 and HTTP/2 by ALPN, HTTP/3 over QUIC; and h2c.
VERSIONS = ("1.1", "2", "h2c", "3")
_TEXT, _BINARY, _CLOSE = 0x1, 0x2, 0x8


def _scheme(version: str) -> str:
    return "http" if version == "h2c" else "https"


@pytest.mark.parametrize("version", VERSIONS)
async def test_scope_and_echo(version: str, serve: Serve) -> None:
    app = WebSocketApp()
    async with serve(app) as server:
        connection = await server.connect(version)
        async with connection:
            raw = await open_raw(
                connection,
                "/scope?room=1",
                scheme=_scheme(version),
                headers=((b"x-test", b"yes"),),
            )
            assert (b"x-app", b"websocket-app") in raw.accepted.headers
            status = dict(raw.accepted.headers)[b":status"]
            assert status == (b"101" if version == "1.1" else b"200")
            with anyio.fail_after(10):
                event = await raw.stream.receive_event()
            assert isinstance(event, DataReceived)
            raw.session.receive_data(event.data)
            [message] = list(raw.session.events())
            assert isinstance(message, TextMessage)
            scope = json.loads(message.data)
            assert scope["type"] == "websocket"
            assert scope["scheme"] == ("ws" if version == "h2c" else "wss")
            assert scope["path"] == "/scope"
            assert scope["query_string"] == "room=1"
            assert scope["http_version"] == ("2" if version == "h2c" else version)
            assert scope["extensions"] == ["websocket.http.response"]
            assert scope["headers"]["x-test"] == "yes"
            assert scope["headers"]["host"] == "localhost"
            # An echo, then the client's close: the application hears 1000.
            await raw.stream.send_data(frame(_TEXT, "héllo".encode()))
            with anyio.fail_after(10):
                event = await raw.stream.receive_event()
            assert isinstance(event, DataReceived)
            raw.session.receive_data(event.data)
            assert list(raw.session.events()) == [TextMessage("héllo")]
            await raw.stream.send_data(frame(_CLOSE, struct.pack("!H", 1000) + b"ok"))
            # The server echoes the code (RFC 6455 §5.5.1).
            assert await raw.close_code() == 1000
        await app.wait_disconnects(1)
        assert app.disconnects == [("/scope", 1000, "ok")]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/deny", 401, b"no entry"),
        ("/reject", 403, b"Forbidden\n"),
        ("/crash", 500, b"Internal Server Error\n"),
    ],
)
async def test_refusals_by_the_application(
    version: str, path: str, status: int, body: bytes, serve: Serve
) -> None:
    async with serve(WebSocketApp()) as server:
        connection = await server.connect(version)
        async with connection:
            handshake = ClientHandshake(
                connection.http_version, authority="localhost", path=path
            )
            await fetch(connection, "GET", "/warm-up")  # HTTP/2: SETTINGS read
            stream = await connection.open_stream(handshake.request_headers)
            async with stream:
                with anyio.fail_after(10):
                    response = await read_response(stream)
            assert response.status == status
            assert response.body == body
            # The connection still serves requests.
            assert (await fetch(connection, "GET", "/again")).status == 500


@pytest.mark.parametrize("version", ("1.1", "2"))
async def test_malformed_requests_refused_without_the_application(
    version: str, serve: Serve
) -> None:
    app = WebSocketApp()
    async with serve(app) as server:
        connection = await server.connect(version)
        async with connection:
            await fetch(connection, "GET", "/warm-up")
            if version == "1.1":
                extra = ((b"upgrade", b"websocket"), (b"connection", b"upgrade"))
                headers = request_headers("GET", "/echo", extra)  # no key
                expected = 400
            else:
                headers = (
                    (b":method", b"CONNECT"),
                    (b":protocol", b"websocket"),
                    (b":scheme", b"https"),
                    (b":authority", b"localhost"),
                    (b":path", b"/echo"),
                    (b"sec-websocket-version", b"8"),
                )
                expected = 400
            stream = await connection.open_stream(headers)
            async with stream:
                with anyio.fail_after(10):
                    response = await read_response(stream)
            assert response.status == expected
    assert app.disconnects == []


@pytest.mark.parametrize("version", ("1.1", "2", "3"))
@pytest.mark.parametrize(
    ("frames", "code"),
    [
        # RFC 6455 §7.4.1: a message over the limit is 1009.
        ([frame(_BINARY, b"x" * 3000)], 1009),
        # ... also when it comes in fragments.
        ([frame(_BINARY, b"x" * 1500, fin=False), frame(0x0, b"x" * 1500)], 1009),
        # Invalid UTF-8 in a text message: 1007 (RFC 6455 §8.1).
        ([frame(_TEXT, b"caf\xc3")], 1007),
        # An unmasked client frame: 1002 (RFC 6455 §5.1).
        ([frame(_TEXT, b"hello", mask=False)], 1002),
        # A close code that may not be sent (1005, RFC 6455 §7.4.1): 1002.
        ([frame(_CLOSE, struct.pack("!H", 1005))], 1002),
        ([frame(_CLOSE, struct.pack("!H", 999))], 1002),
    ],
    ids=["oversized", "oversized-fragments", "bad-utf8", "unmasked", "1005", "999"],
)
async def test_bad_frames_close_with_the_right_code(
    version: str,
    frames: list[bytes],
    code: int,
    serve: Serve,
) -> None:
    app = WebSocketApp()
    async with serve(
        app,
        websocket_max_message_size=2048,
    ) as server:
        connection = await server.connect(version)
        async with connection:
            raw = await open_raw(connection, "/echo")
            for data in frames:
                await raw.stream.send_data(data)
            assert await raw.close_code() == code
        await app.wait_disconnects(1)
        [(path, seen, _)] = app.disconnects
        assert (path, seen) == ("/echo", code)


@pytest.mark.parametrize("version", ("1.1", "2", "3"))
async def test_application_failure_after_accepting_closes_with_1011(
    version: str, serve: Serve
) -> None:
    async with serve(WebSocketApp()) as server:
        connection = await server.connect(version)
        async with connection:
            raw = await open_raw(connection, "/crash-after")
            assert await raw.close_code() == 1011


async def test_http1_connection_closed_after_the_websocket(serve: Serve) -> None:
    # RFC 6455 §7.1.1: the server closes the TCP connection first.
    async with serve(WebSocketApp()) as server:
        connection = await server.connect("1.1")
        async with connection:
            raw = await open_raw(connection, "/say-bye")
            assert await raw.close_code() == 4000
            await raw.stream.send_data(frame(_CLOSE, struct.pack("!H", 4000)))
            with anyio.fail_after(10):
                try:
                    # Bounded: the server closes the connection.
                    async for _ in raw.stream:
                        pass
                except ConnectionClosed:
                    pass
            assert not connection.is_available()


async def test_extended_connect_is_advertised_on_http2(serve: Serve) -> None:
    # RFC 8441 §3: without SETTINGS_ENABLE_CONNECT_PROTOCOL the client's
    # protocol would refuse to send :protocol (LocalProtocolError).
    async with serve(WebSocketApp()) as server:
        connection = await server.connect("2")
        async with connection:
            await fetch(connection, "GET", "/warm-up")
            handshake = ClientHandshake("2", authority="localhost", path="/echo")
            stream = await connection.open_stream(handshake.request_headers)
            async with stream:
                with anyio.fail_after(10):
                    head = await stream.receive_event()
                assert isinstance(head, HeadersReceived)
                assert dict(head.headers)[b":status"] == b"200"


async def _misusing_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Misuses the ASGI messages in the way its path says; records what it saw."""
    if scope["type"] != "websocket":
        return
    path = scope["path"]
    await receive()
    if path == "/send-first":
        await send({"type": "websocket.send", "text": "not accepted yet"})
    if path == "/bad-status":
        await send({"type": "websocket.http.response.start", "status": 101})
    await send({"type": "websocket.accept", "subprotocol": None})
    if path == "/bad-close":
        await send({"type": "websocket.close", "code": 1005})
    if path == "/after-disconnect":
        message = await receive()
        assert message["type"] == "websocket.disconnect"
        assert await receive() == message
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except ClientDisconnected:
            await send({"type": "websocket.send", "text": "raises again"})


@pytest.mark.parametrize("version", ("1.1", "2"))
async def test_application_misuse(
    version: str,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hcore.access")
    async with (
        serve(_misusing_app) as server,
        Client(
            networking=server.networking,
            tls_config=server.client_tls,
            http_versions=(version,) if version == "1.1" else ("1.1", "2"),
        ) as client,
    ):
        base = f"wss://localhost:{server.https_port}"
        with anyio.fail_after(20):
            # A message out of order fails the application: 500.
            for path in ("/send-first", "/bad-status"):
                with pytest.raises(WebSocketRejected) as refused:
                    async with client.websocket(base + path):
                        pass
                assert refused.value.status == 500
            # A close code that may not be sent fails it after accepting: 1011.
            async with client.websocket(base + "/bad-close") as ws:
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 1011
            # After the disconnect: receive() repeats it, send() raises.
            async with client.websocket(base + "/after-disconnect") as ws:
                await ws.close(1001)
                assert ws.close_code == 1001
    logged = [r.getMessage() for r in caplog.records if r.name == "hcore.access"]
    assert any("WEBSOCKET /bad-close" in line for line in logged), logged


@pytest.mark.parametrize("version", ("1.1", "2", "3"))
async def test_client_vanishing_is_a_1006_disconnect(
    version: str, serve: Serve
) -> None:
    app = WebSocketApp()
    async with serve(app) as server:
        connection = await server.connect(version)
        raw = await open_raw(connection, "/echo")
        await raw.stream.send_data(frame(_TEXT, b"hi"))
        with anyio.fail_after(10):
            event = await raw.stream.receive_event()
        assert isinstance(event, DataReceived)
        # No Close frame: the connection just ends.
        await connection.aclose()
        await app.wait_disconnects(1)
        assert app.disconnects[0][:2] == ("/echo", 1006)


@pytest.mark.parametrize("version", ("1.1", "2"))
async def test_streamed_denial_response(version: str, serve: Serve) -> None:
    async def deny(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        assert scope["state"] == {"ready": True}
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 429,
                "headers": [(b"retry-after", b"5")],
            }
        )
        for piece in (b"slow ", b"down", b""):
            await send(
                {
                    "type": "websocket.http.response.body",
                    "body": piece,
                    "more_body": bool(piece),
                }
            )
        with pytest.raises(ClientDisconnected):
            await send({"type": "websocket.send", "text": "after the response"})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            state = scope["state"]
            assert isinstance(state, dict)
            state["ready"] = True
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await deny(scope, receive, send)

    async with (
        serve(app) as server,
        Client(
            networking=server.networking,
            tls_config=server.client_tls,
            http_versions=(version,) if version == "1.1" else ("1.1", "2"),
        ) as client,
    ):
        with anyio.fail_after(20), pytest.raises(WebSocketRejected) as refused:
            async with client.websocket(f"wss://localhost:{server.https_port}/"):
                pass
        assert refused.value.status == 429
        assert refused.value.body == b"slow down"
        assert (b"retry-after", b"5") in refused.value.headers
