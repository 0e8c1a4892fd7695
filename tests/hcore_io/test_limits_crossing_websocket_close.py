"""ASGIServer's ``websocket_close_timeout`` crossed through real sockets.

The server starts the closing handshake (the application sends
``websocket.close``) and the client never answers with its Close frame,
nor ends its stream.  With ``websocket_close_timeout=0.3`` the server gives
up the WebSocket: on HTTP/1.1 it closes the connection, on HTTP/2 and
HTTP/3 it ends or resets the stream, and the application (whether it
returned after its close or waits in ``receive()``) gets
``websocket.disconnect`` and finishes.  The other way round: a client that
sends its Close but never ends its HTTP/2 or HTTP/3 stream after the
server's echo is dropped the same way.  Each on every version the server
serves WebSockets on (HTTP/1.1 Upgrade, HTTP/2 extended CONNECT over TLS
and h2c, HTTP/3), on asyncio and Trio, on both socket backends.
"""

from __future__ import annotations

import struct

import anyio
import pytest

from hcore import HCoreError
from hcore.events import DataReceived, StreamResetReceived
from hcore.websocket import CloseReceived
from hcore_io import Limits, NetworkError
from hcore_io.connections import StreamReset
from hcore_io.server import Receive, Scope, Send

from .server_helpers import Serve, fetch
from .websocket_helpers import RawWebSocket, frame, open_raw

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

VERSIONS = ("1.1", "2", "h2c", "3")
_CLOSE_TIMEOUT = 0.3
# Far below the 5 s default: a server that ignored the bound would miss it.
_DROPPED_WITHIN = 4.0
_CLOSE = 0x8


class _ClosingApp:
    """Accepts, sends ``hi``, closes with 4000; then waits or returns.

    ``/wait``: after its close it waits in ``receive()`` for the end (the
    common ASGI shape); ``/return``: it returns at once.  ``/echo-close``:
    it waits for the client's messages and never closes itself.
    """

    def __init__(self) -> None:
        #: ``(path, message)`` of the last message each application got.
        self.ended: list[tuple[str, dict[str, object]]] = []
        self.finished = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        path = str(scope["path"])
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        try:
            if path != "/echo-close":
                await send({"type": "websocket.send", "text": "hi"})
                await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
                if path == "/return":
                    self.ended.append((path, {"type": "returned"}))
                    return
            # Bounded: ends with the disconnect.
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    self.ended.append((path, dict(message)))
                    return
        finally:
            self.finished.set()


async def _read_server_close(raw: RawWebSocket) -> int:
    """Read the server's frames up to its Close; return the Close's code."""
    with anyio.fail_after(10):
        # Bounded by the timeout.
        async for event in raw.stream:
            if isinstance(event, DataReceived):
                raw.session.receive_data(event.data)
                for message in raw.session.events():
                    if isinstance(message, CloseReceived):
                        return message.code
    raise AssertionError("the stream ended before the server's Close")


async def _wait_dropped(raw: RawWebSocket) -> str:
    """Read (answering nothing) until the server gives the stream up."""
    with anyio.fail_after(_DROPPED_WITHIN):
        try:
            # Bounded by the timeout.
            while True:
                event = await raw.stream.receive_event()
                if isinstance(event, StreamResetReceived):
                    return "reset"
                if isinstance(event, DataReceived) and event.end_stream:
                    return "ended"
        except StreamReset:
            return "reset"
        except (NetworkError, HCoreError):
            return "connection closed"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", ["/wait", "/return"])
async def test_client_that_never_answers_the_close_is_dropped(
    version: str, path: str, serve: Serve
) -> None:
    app = _ClosingApp()
    limits = Limits(websocket_close_timeout=_CLOSE_TIMEOUT)
    async with serve(app, limits=limits) as server:
        connection = await server.connect(version)
        async with connection:
            scheme = "http" if version == "h2c" else "https"
            # Before the server's Close leaves: its wait starts later.
            started = anyio.current_time()
            raw = await open_raw(connection, path, scheme=scheme)
            assert await _read_server_close(raw) == 4000
            how = await _wait_dropped(raw)
            elapsed = anyio.current_time() - started
            if version == "1.1":
                # RFC 6455 §7.1.1: the server closes the TCP connection
                # (which ends the upgraded stream).
                assert how in ("ended", "connection closed")
            else:
                assert how in ("ended", "reset")
            with anyio.fail_after(10):
                await app.finished.wait()
            if version != "1.1":
                # Only the stream was given up: the connection serves on.
                assert (await fetch(connection, "GET", "/")).status == 500
        # The server waited for the bound (a little slack for the rounding).
        assert elapsed >= _CLOSE_TIMEOUT * 0.9
        if path == "/wait":
            # The application heard of the abnormal end (RFC 6455 §7.1.5).
            [(ended_path, message)] = app.ended
            assert ended_path == path
            assert message["type"] == "websocket.disconnect"
            assert message["code"] == 1006
        else:
            assert app.ended == [(path, {"type": "returned"})]


@pytest.mark.parametrize("version", ["2", "h2c", "3"])
async def test_client_that_never_ends_its_stream_after_close_is_dropped(
    version: str, serve: Serve
) -> None:
    app = _ClosingApp()
    limits = Limits(websocket_close_timeout=_CLOSE_TIMEOUT)
    async with serve(app, limits=limits) as server:
        connection = await server.connect(version)
        async with connection:
            scheme = "http" if version == "h2c" else "https"
            raw = await open_raw(connection, "/echo-close", scheme=scheme)
            # Before the server's echo leaves: its wait starts later.
            started = anyio.current_time()
            await raw.stream.send_data(frame(_CLOSE, struct.pack("!H", 1000)))
            # The echo of the Close, then the server's END_STREAM (RFC 8441
            # §5); the client keeps its own side open.
            assert await _read_server_close(raw) == 1000
            assert await _wait_dropped(raw) in ("ended", "reset")
            # The application is let go once the server gave up waiting
            # for the client's END_STREAM.
            with anyio.fail_after(_DROPPED_WITHIN):
                await app.finished.wait()
            assert anyio.current_time() - started >= _CLOSE_TIMEOUT * 0.9
            assert app.ended == [
                (
                    "/echo-close",
                    {"type": "websocket.disconnect", "code": 1000, "reason": ""},
                )
            ]
            # The server gives the stream up after the bound: the connection
            # serves on.
            with anyio.fail_after(10):
                assert (await fetch(connection, "GET", "/")).status == 500
