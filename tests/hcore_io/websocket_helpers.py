"""A WebSocket test application, and raw frames for bad-input tests.

:class:`WebSocketApp` is an ASGI application whose routes (by path) are:

- ``/echo``: accepts (with the first subprotocol offered), echoes every
  message; the text ``close CODE REASON`` makes it close with that code;
- ``/scope``: accepts, sends the scope's interesting parts as JSON, echoes;
- ``/deny``: a 401 denial response (the ``websocket.http.response``
  extension), body ``no entry``;
- ``/reject``: ``websocket.close`` before accepting (a 403);
- ``/crash``: fails before accepting (a 500);
- ``/crash-after``: accepts, then fails (closed with 1011);
- ``/say-bye``: accepts, sends ``bye``, closes with 4000 ``done``;
- ``/big?N``: accepts, sends a binary message of ``N`` bytes, echoes.

Every ``websocket.disconnect`` the application receives is kept in
:attr:`WebSocketApp.disconnects`, with the path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import anyio

from hcore import Headers, LocalProtocolError
from hcore.events import DataReceived, HeadersReceived
from hcore.websocket import (
    ClientHandshake,
    CloseReceived,
    SessionTerminated,
    WebSocketAccepted,
    WebSocketSession,
)
from hcore_io import ReadTimeout
from hcore_io.connections import HTTPConnection, HTTPStream
from hcore_io.server import ClientDisconnected, Message, Receive, Scope, Send

__all__ = ("RawWebSocket", "WebSocketApp", "frame", "open_raw")


@dataclass
class WebSocketApp:
    """The routes above, for every WebSocket of a server."""

    #: ``(path, code, reason)`` of every ``websocket.disconnect`` received.
    disconnects: list[tuple[str, int, str]] = field(default_factory=list)
    #: Set when a disconnect was recorded.
    changed: anyio.Event = field(default_factory=anyio.Event)

    async def wait_disconnects(self, count: int) -> None:
        """Wait until ``count`` disconnects were recorded."""
        with anyio.fail_after(10):
            # Bounded by the timeout.
            while len(self.disconnects) < count:
                await self.changed.wait()
                self.changed = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        path = str(scope["path"])
        connect = await receive()
        assert connect["type"] == "websocket.connect"
        if path == "/deny":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"no entry"})
            return
        if path == "/reject":
            await send({"type": "websocket.close"})
            return
        if path == "/crash":
            raise RuntimeError("crash before accepting (expected by the test)")
        offered = scope["subprotocols"]
        assert isinstance(offered, list)
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": offered[0] if offered else None,
                "headers": [(b"x-app", b"websocket-app")],
            }
        )
        if path == "/crash-after":
            raise RuntimeError("crash after accepting (expected by the test)")
        if path == "/say-bye":
            await send({"type": "websocket.send", "text": "bye"})
            await send({"type": "websocket.close", "code": 4000, "reason": "done"})
        elif path == "/scope":
            await send({"type": "websocket.send", "text": _describe(scope)})
        elif path == "/big":
            size = int(bytes(scope["query_string"]).decode())  # type: ignore[call-overload]
            await send({"type": "websocket.send", "bytes": b"x" * size})
        await self._echo(path, receive, send)

    async def _echo(self, path: str, receive: Receive, send: Send) -> None:
        # Bounded by what the client sends.
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                code, reason = message["code"], message.get("reason", "")
                assert isinstance(code, int) and isinstance(reason, str)
                self.disconnects.append((path, code, reason))
                self.changed.set()
                return
            text = message.get("text")
            if isinstance(text, str) and text.startswith("close "):
                _, code_text, reason = text.split(" ", 2)
                await send(
                    {
                        "type": "websocket.close",
                        "code": int(code_text),
                        "reason": reason,
                    }
                )
                continue
            reply: Message = {"type": "websocket.send"}
            if text is not None:
                reply["text"] = text
            else:
                reply["bytes"] = message["bytes"]
            try:
                await send(reply)
            except ClientDisconnected:
                # The client closed meanwhile: its disconnect comes next.
                continue


def _describe(scope: Scope) -> str:
    headers = scope["headers"]
    assert isinstance(headers, list)
    return json.dumps(
        {
            "type": scope["type"],
            "scheme": scope["scheme"],
            "path": scope["path"],
            "query_string": bytes(scope["query_string"]).decode(),  # type: ignore[call-overload]
            "http_version": scope["http_version"],
            "subprotocols": scope["subprotocols"],
            "extensions": sorted(scope["extensions"]),  # type: ignore[call-overload]
            "headers": {n.decode(): v.decode() for n, v in headers},
        }
    )


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """One WebSocket frame (RFC 6455 §5.2), masked as a client's unless asked not."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        head.append(mask_bit | size)
    elif size < 1 << 16:
        head.append(mask_bit | 126)
        head += size.to_bytes(2, "big")
    else:
        head.append(mask_bit | 127)
        head += size.to_bytes(8, "big")
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    masked = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return bytes(head) + key + masked


@dataclass
class RawWebSocket:
    """A WebSocket opened by hand: raw bytes out, the server's frames parsed."""

    stream: HTTPStream
    session: WebSocketSession
    accepted: WebSocketAccepted

    async def close_code(self) -> int:
        """Read until the server's Close frame; return its code."""
        with anyio.fail_after(10):
            # Bounded by the timeout.
            async for event in self.stream:
                if isinstance(event, DataReceived):
                    self.session.receive_data(event.data)
                    for message in self.session.events():
                        if isinstance(message, CloseReceived | SessionTerminated):
                            return message.code
                    if event.end_stream:
                        break
        raise AssertionError("the stream ended without a Close frame")


async def open_raw(
    connection: HTTPConnection,
    path: str,
    *,
    scheme: str = "https",
    headers: Headers = (),
) -> RawWebSocket:
    """Run the handshake on a connection; the session is for reading only."""
    handshake = ClientHandshake(
        connection.http_version,
        authority="localhost",
        path=path,
        scheme=scheme,
        headers=headers,
    )
    with anyio.fail_after(10):
        # Bounded by the timeout: HTTP/2 allows the extended CONNECT once
        # the server's SETTINGS were read (RFC 8441 §3).
        while True:
            try:
                stream = await connection.open_stream(handshake.request_headers)
                break
            except LocalProtocolError:
                try:
                    await connection.receive_event(timeout=0.05)
                except ReadTimeout:
                    pass
        head = await stream.receive_event()
    assert isinstance(head, HeadersReceived), head
    accepted = handshake.receive_response(head.headers)
    assert isinstance(accepted, WebSocketAccepted), accepted
    return RawWebSocket(stream, accepted.session(), accepted)
