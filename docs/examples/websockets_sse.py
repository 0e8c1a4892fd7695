"""WebSockets over HTTP/1.1, HTTP/2 and HTTP/3, and a Server-Sent Events stream.

An :class:`~hcore_io.server.ASGIServer` runs in process on
``https://127.0.0.1`` with a throwaway certificate.  Its application echoes
WebSocket messages (the ASGI ``websocket`` scope, the same on every HTTP
version) and serves an event stream that a reconnecting client resumes
with ``Last-Event-ID``.  The client opens a WebSocket over each version
with :meth:`Client.websocket <hcore_io.client.Client.websocket>` and reads
the stream with :meth:`Client.sse <hcore_io.client.Client.sse>`.

Run it: ``python docs/examples/websockets_sse.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio

from hcore import ClientTLSConfig
from hcore.sse import ServerSentEvent, encode_event
from hcore_io.client import Client
from hcore_io.server import ASGIServer, Receive, Scope, Send, generate_certificate


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI side of a WebSocket: accept, echo every message, until closed."""
    message = await receive()  # websocket.connect
    assert message["type"] == "websocket.connect"
    offered = scope["subprotocols"]
    assert isinstance(offered, list)
    chosen = "echo" if "echo" in offered else None
    await send({"type": "websocket.accept", "subprotocol": chosen})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return  # the client closed: message["code"] says how
        # A text message has "text", a binary one "bytes".
        await send({**message, "type": "websocket.send"})


async def events(scope: Scope, receive: Receive, send: Send) -> None:
    """An event stream of three events, resumed after the last ID received."""
    headers = scope["headers"]
    assert isinstance(headers, list)
    last_id = dict(headers).get(b"last-event-id", b"0")
    start = int(last_id) + 1
    if start > 3:
        # 204 tells an EventSource to stop reconnecting.
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})
        return
    content_type = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": content_type})
    # Two events on the first connection, then the stream ends; the client
    # reconnects after `retry` milliseconds and asks for the rest.
    for number in range(start, min(start + 2, 4)):
        event = ServerSentEvent(f"tick {number}", id=str(number), retry=50)
        body = encode_event(event)
        await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body"})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await echo(scope, receive, send)
    elif scope["type"] == "http":
        await events(scope, receive, send)


async def websockets(tls_config: ClientTLSConfig, port: int) -> None:
    for version in ("1.1", "2", "3"):
        versions = ("3",) if version == "3" else ("1.1", "2")
        async with Client(tls_config=tls_config, http_versions=versions) as client:
            url = f"wss://127.0.0.1:{port}/echo"
            async with client.websocket(
                url, http_version=version, subprotocols=["echo"]
            ) as ws:
                await ws.send_text("hello")
                text = await ws.receive()
                await ws.send_bytes(b"\x01\x02")
                data = await ws.receive()
                rtt = await ws.ping()
                print(
                    f"HTTP/{ws.http_version} subprotocol={ws.subprotocol}:"
                    f" {text!r} {data!r}, ping {rtt * 1000:.1f} ms"
                )
            print(f"  closed with {ws.close_code}")


async def server_sent_events(tls_config: ClientTLSConfig, port: int) -> None:
    async with Client(tls_config=tls_config) as client:
        url = f"https://127.0.0.1:{port}/events"
        async with client.sse(url, max_reconnects=5) as source:
            async for event in source:
                print(f"event {event.id}: {event.data}")
        print(f"{source.connections} requests, last event ID {source.last_event_id}")


async def main(directory: Path) -> None:
    certificate = generate_certificate(directory, ["127.0.0.1"])
    server = ASGIServer(app, tls_config=certificate.server_tls_config())
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            (endpoint,) = await group.start(server.serve, ["https://127.0.0.1:0"])
            await websockets(certificate.client_tls_config(), endpoint.port)
            await server_sent_events(certificate.client_tls_config(), endpoint.port)
            await server.shutdown(timeout=1)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        anyio.run(main, Path(directory))
