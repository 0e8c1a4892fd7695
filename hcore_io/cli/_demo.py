"""``hcore demo``: one server, three HTTP versions, one table.

The demo makes a throwaway certificate, serves a small ASGI application on
``https://127.0.0.1`` (TCP for HTTP/1.1 and HTTP/2, UDP for HTTP/3), fetches
from it over each version with an :class:`~hcore_io.connections.HTTPConnection`,
reads a Server-Sent Events stream with :meth:`Client.sse
<hcore_io.client.Client.sse>` (which resumes it once, with ``Last-Event-ID``),
echoes a WebSocket message over each version with :meth:`Client.websocket
<hcore_io.client.Client.websocket>`, prints what happened and exits 0 if
every fetch succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from hcore import ClientTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols.http1 import HTTP1ClientFactory
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore.protocols.http3 import HTTP3ClientFactory
from hcore.sse import ServerSentEvent, encode_event
from hcore_io.cli._common import add_loop_argument, run_async
from hcore_io.client import Client
from hcore_io.connections import HTTPOpener, HTTPOverQUICOpener, HTTPOverTCPOpener
from hcore_io.server import (
    ASGIServer,
    Message,
    Receive,
    Scope,
    Send,
    generate_certificate,
)

if TYPE_CHECKING:
    from hcore_io.cli import Subparsers

__all__ = ("demo_app", "register", "run")

# Bounds the whole demo, so that it can never hang.
_DEMO_TIMEOUT = 60.0


def register(subparsers: Subparsers) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="serve and fetch over HTTP/1.1, HTTP/2 and HTTP/3, and show the results",
        description=(
            "Start a server on all three HTTP versions with a certificate made on "
            "the spot, fetch from it over each, print a table and exit."
        ),
    )
    add_loop_argument(parser)
    parser.set_defaults(run=run)


async def demo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A small ASGI application: a JSON greeting naming the HTTP version.

    ``/events`` is a Server-Sent Events stream instead (see :func:`_events`).
    """
    if scope["type"] == "websocket":
        await _echo(receive, send)
        return
    if scope["type"] != "http":
        return
    message: Message = await receive()
    # Bounded by the request body.
    while message.get("more_body"):
        message = await receive()
    if scope["path"] == "/events":
        await _events(scope, send)
        return
    body = json.dumps(
        {"hello": "world", "http_version": scope["http_version"], "path": scope["path"]}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _events(scope: Scope, send: Send) -> None:
    """Three ticks, then the stream ends; a client resuming after them gets 204."""
    headers = scope["headers"]
    assert isinstance(headers, list)
    resumed = any(name == b"last-event-id" for name, _ in headers)
    content_type = [] if resumed else [(b"content-type", b"text/event-stream")]
    await send(
        {
            "type": "http.response.start",
            "status": 204 if resumed else 200,
            "headers": content_type,
        }
    )
    if not resumed:
        for tick in range(1, 4):
            # A short retry: the client reconnects at once when the stream ends.
            event = ServerSentEvent(f"tick {tick}", id=str(tick), retry=10)
            body = encode_event(event)
            await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _echo(receive: Receive, send: Send) -> None:
    """A WebSocket echo: every message back as it came."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    # Bounded by what the client sends.
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({**message, "type": "websocket.send"})


@dataclass
class _Row:
    label: str
    version: str = "-"
    status: str = "-"
    size: int = 0
    seconds: float = 0.0
    alt_svc: str = ""
    error: str = ""
    note: str = ""


async def _fetch(label: str, opener: HTTPOpener, port: int) -> _Row:
    row = _Row(label)
    start = time.perf_counter()
    try:
        with anyio.fail_after(15):
            connection = await opener(("127.0.0.1", port), server_name="localhost")
            async with connection:
                row.version = connection.http_version
                stream = await connection.open_stream(
                    (
                        (b":method", b"GET"),
                        (b":scheme", b"https"),
                        (b":authority", b"localhost:%d" % port),
                        (b":path", b"/demo"),
                    ),
                    end_stream=True,
                )
                async with stream:
                    # Bounded: iteration stops at the response's end.
                    async for event in stream:
                        if isinstance(event, HeadersReceived):
                            for name, value in event.headers:
                                if name == b":status":
                                    row.status = value.decode()
                                elif name == b"alt-svc":
                                    row.alt_svc = value.decode()
                        elif isinstance(event, DataReceived):
                            row.size += len(event.data)
    except Exception as exc:  # the demo reports any failure in its table
        row.error = f"{type(exc).__name__}: {exc}"
    row.seconds = time.perf_counter() - start
    return row


async def _fetch_events(client_tls: ClientTLSConfig, port: int) -> _Row:
    row = _Row("SSE")
    start = time.perf_counter()
    try:
        with anyio.fail_after(15):
            async with Client(tls_config=client_tls, retries=0) as client:
                url = f"https://127.0.0.1:{port}/events"
                events = []
                async with client.sse(url, max_reconnects=1) as source:
                    # Bounded: the server says 204 when the client resumes.
                    async for event in source:
                        events.append(event)
                        if source.response is not None:
                            row.version = source.response.http_version
                            row.status = str(source.response.status)
                row.size = sum(len(event.data) for event in events)
                row.note = (
                    f"{len(events)} events in {source.connections} requests"
                    f" (Last-Event-ID: {source.last_event_id} on reconnecting)"
                )
    except Exception as exc:  # the demo reports any failure in its table
        row.error = f"{type(exc).__name__}: {exc}"
    row.seconds = time.perf_counter() - start
    return row


async def _fetch_websocket(
    client_tls: ClientTLSConfig, port: int, version: str
) -> _Row:
    row = _Row("WebSocket")
    start = time.perf_counter()
    try:
        with anyio.fail_after(15):
            versions = ("3",) if version == "3" else ("1.1", "2")
            async with Client(tls_config=client_tls, http_versions=versions) as client:
                url = f"wss://127.0.0.1:{port}/echo"
                async with client.websocket(url, http_version=version) as ws:
                    row.version = ws.http_version
                    row.status = "101" if version == "1.1" else "200"
                    await ws.send_text("hello over WebSocket")
                    echoed = await ws.receive()
                    row.size = len(echoed)
                    rtt = await ws.ping()
                row.note = (
                    f"echo {echoed!r}, ping {rtt * 1000:.1f} ms, close {ws.close_code}"
                )
    except Exception as exc:  # the demo reports any failure in its table
        row.error = f"{type(exc).__name__}: {exc}"
    row.seconds = time.perf_counter() - start
    return row


async def _demo() -> int:
    with tempfile.TemporaryDirectory(prefix="hcore-demo-") as directory:
        certificate = generate_certificate(Path(directory), ("localhost", "127.0.0.1"))
        client_tls: ClientTLSConfig = certificate.client_tls_config()
        server = ASGIServer(demo_app, tls_config=certificate.server_tls_config())
        with anyio.fail_after(_DEMO_TIMEOUT):
            async with anyio.create_task_group() as group:
                (endpoint,) = await group.start(server.serve, ["https://127.0.0.1:0"])
                port = endpoint.port
                print(f"server listening on {endpoint} (TCP and UDP)")
                openers: list[tuple[str, HTTPOpener]] = [
                    (
                        "HTTP/1.1",
                        HTTPOverTCPOpener(HTTP1ClientFactory(), tls_config=client_tls),
                    ),
                    (
                        "HTTP/2",
                        HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=client_tls),
                    ),
                    (
                        "HTTP/3",
                        HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=client_tls),
                    ),
                ]
                rows = [await _fetch(label, opener, port) for label, opener in openers]
                rows.append(await _fetch_events(client_tls, port))
                for version in ("1.1", "2", "3"):
                    rows.append(await _fetch_websocket(client_tls, port, version))
                await server.shutdown(timeout=5)
    _print_table(rows)
    failed = [row for row in rows if row.error or row.status not in ("200", "101")]
    return 1 if failed else 0


def _print_table(rows: list[_Row]) -> None:
    print(f"{'request':<9} {'version':<8} {'status':<7} {'bytes':>6} {'time':>9}  note")
    for row in rows:
        note = (
            row.error or row.note or (f"alt-svc: {row.alt_svc}" if row.alt_svc else "")
        )
        print(
            f"{row.label:<9} {'HTTP/' + row.version if row.version != '-' else '-':<8} "
            f"{row.status:<7} {row.size:>6} {row.seconds * 1000:>7.1f}ms  {note}"
        )
    ok = all(not row.error and row.status in ("200", "101") for row in rows)
    print("all three versions answered" if ok else "some requests failed")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Run ``hcore demo``."""
    return run_async(args.loop, _demo)
