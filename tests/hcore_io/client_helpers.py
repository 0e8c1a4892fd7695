"""A test server for the client tests, built on hcore_io listeners.

:func:`client_server` serves :class:`ClientApp` on plain TCP (HTTP/1.1, or
HTTP/2 with prior knowledge), on TLS (HTTP/2 or HTTP/1.1 by ALPN) and, on
request, on QUIC (HTTP/3), and counts the connections each listener accepts
so that tests can check reuse on the server side.

Routes (query parameters in brackets):

- ``/ok``: 200 ``ok``;
- ``/bytes/N``: ``N`` bytes of :func:`pattern`, in 1 MiB pieces;
- ``/echo``: the request body back, piece by piece;
- ``/headers``: the request's header block, one ``name: value`` a line;
- ``/redirect/N``: 302 to ``/redirect/N-1``; ``/redirect/0`` is 200;
- ``/loop``: 302 to itself;
- ``/to[status, url]``: a redirect with that status to that URL;
- ``/close``: 200 with ``connection: close``;
- ``/then-close``: 200, then the server closes the connection (no warning);
- ``/slow-close``: the same after 0.1 s (so that concurrent requests each
  get a connection);
- ``/slow[delay]``: 200 after ``delay`` seconds;
- ``/slow-body``: the head at once, the body never;
- ``/silent``: never answers;
- ``/sink``: never reads the request body, never answers;
- ``/alt-svc[port]``: 200 with ``alt-svc: h3=":port"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import anyio

from hcore import Address, Headers, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols.http1 import HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ServerFactory
from hcore_io import NetworkError
from hcore_io.connections import (
    HTTPConnection,
    HTTPListener,
    HTTPOverQUICListener,
    HTTPOverTCPListener,
    HTTPStream,
    PriorKnowledgeHTTPFactory,
    StreamReset,
)
from hcore_io.networking import ServerNetworking

from .connection_helpers import CHUNK, pattern

__all__ = ("ClientApp", "TestServer", "client_server", "pattern")


def _header(headers: Headers, name: bytes) -> bytes:
    for key, value in headers:
        if key == name:
            return value
    return b""


@dataclass
class ClientApp:
    """The routes above; one instance serves every connection of a server."""

    #: Connections accepted, by listener name ("tcp", "tls", "quic").
    connections: dict[str, int] = field(default_factory=dict)
    #: Connections open right now, and the most open at once.
    open_now: int = 0
    open_peak: int = 0
    #: Request paths, in order of arrival.
    paths: list[str] = field(default_factory=list)
    #: What ``/gated`` waits for before the second half of its body.
    gate: anyio.Event = field(default_factory=anyio.Event)

    def handler(self, name: str) -> _Handler:
        """The connection handler of the listener called ``name``."""
        return _Handler(self, name)

    async def serve(self, connection: HTTPConnection) -> None:
        """Serve a connection, each request in a task of its own."""
        async with anyio.create_task_group() as group:
            # Bounded by the requests the client sends before it closes.
            while (stream := await connection.accept_stream()) is not None:
                group.start_soon(self.answer, connection, stream)

    async def answer(self, connection: HTTPConnection, stream: HTTPStream) -> None:
        """Answer one request."""
        async with stream:
            try:
                await self._answer(connection, stream)
            except (StreamReset, NetworkError):
                pass

    async def _answer(self, connection: HTTPConnection, stream: HTTPStream) -> None:
        first = await stream.receive_event()
        assert isinstance(first, HeadersReceived)
        target = _header(first.headers, b":path").decode()
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        self.paths.append(path)
        if path == "/silent":
            await anyio.sleep_forever()
        if path == "/sink":
            await anyio.sleep_forever()
        body = b""
        if not first.end_stream and path != "/echo":
            # Bounded by the request body.
            async for event in stream:
                if isinstance(event, DataReceived):
                    body += event.data
        ok: list[tuple[bytes, bytes]] = [(b":status", b"200")]
        if path == "/echo":
            await stream.send_headers(ok, end_stream=first.end_stream)
            # Bounded by the request body.
            async for event in stream:
                if isinstance(event, DataReceived):
                    await stream.send_data(event.data, end_stream=event.end_stream)
            return
        if path.startswith("/bytes/"):
            size = int(path.removeprefix("/bytes/"))
            ok.append((b"content-length", str(size).encode()))
            await stream.send_headers(ok, end_stream=size == 0)
            sent = 0
            # Bounded by size.
            while sent < size:
                piece = pattern(min(CHUNK, size - sent))
                sent += len(piece)
                await stream.send_data(piece, end_stream=sent == size)
            return
        if path == "/gated":
            # "ok", the "k" once the test opens the gate: until then the
            # response is unfinished, and its connection taken.
            ok.append((b"content-length", b"2"))
            await stream.send_headers(ok)
            await stream.send_data(b"o")
            await self.gate.wait()
            await stream.send_data(b"k", end_stream=True)
            return
        if path == "/slow-body":
            await stream.send_headers(ok)
            await anyio.sleep_forever()
        if path == "/slow":
            await anyio.sleep(float(query.get("delay", ["1"])[0]))
        if path == "/slow-close":
            await anyio.sleep(0.1)
        status, extra, content = self._simple(path, query, first.headers, body)
        headers = [(b":status", str(status).encode()), *extra]
        headers.append((b"content-length", str(len(content)).encode()))
        await stream.send_headers(headers)
        await stream.send_data(content, end_stream=True)
        if path in ("/then-close", "/slow-close"):
            await anyio.sleep(0.05)
            await connection.aclose()

    def _simple(
        self,
        path: str,
        query: dict[str, list[str]],
        request: Headers,
        body: bytes,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if path in ("/ok", "/slow", "/then-close", "/slow-close"):
            return 200, [], b"ok"
        if path == "/headers":
            lines = [name + b": " + value for name, value in request]
            return 200, [], b"\n".join(lines) + b"\nbody: " + body
        if path.startswith("/redirect/"):
            left = int(path.removeprefix("/redirect/"))
            if left == 0:
                return 200, [], b"arrived"
            return 302, [(b"location", f"/redirect/{left - 1}".encode())], b""
        if path == "/loop":
            return 302, [(b"location", b"/loop")], b""
        if path == "/to":
            status = int(query["status"][0])
            return status, [(b"location", query["url"][0].encode())], b""
        if path == "/close":
            return 200, [(b"connection", b"close")], b"bye"
        if path == "/alt-svc":
            value = f'h3=":{query["port"][0]}"; ma=60'.encode()
            return 200, [(b"alt-svc", value)], b"advertised"
        return 404, [], b"not found"


@dataclass
class _Handler:
    app: ClientApp
    name: str

    async def __call__(self, connection: HTTPConnection) -> None:
        app = self.app
        app.connections[self.name] = app.connections.get(self.name, 0) + 1
        app.open_now += 1
        app.open_peak = max(app.open_peak, app.open_now)
        try:
            await app.serve(connection)
        finally:
            app.open_now -= 1


@dataclass
class TestServer:
    """What :func:`client_server` runs."""

    app: ClientApp
    #: Plain TCP (HTTP/1.1, or h2c with prior knowledge).
    tcp: Address
    #: TLS (HTTP/2 or HTTP/1.1 by ALPN).
    tls: Address
    #: QUIC (HTTP/3), if asked for.
    quic: Address | None

    def url(self, path: str, *, tls: bool = False, host: str = "localhost") -> str:
        """A URL of the plain or TLS listener."""
        scheme, port = ("https", self.tls[1]) if tls else ("http", self.tcp[1])
        return f"{scheme}://{host}:{port}{path}"


@asynccontextmanager
async def client_server(
    networking: ServerNetworking,
    tls_config: ServerTLSConfig,
    *,
    quic: bool = False,
    http1_only: bool = False,
    max_concurrent_streams: int = 100,
    host: str = "127.0.0.1",
) -> AsyncIterator[TestServer]:
    """Serve :class:`ClientApp`; cancel everything on exit."""
    app = ClientApp()
    http1 = HTTP1ServerFactory()
    http2 = HTTP2ServerFactory(max_concurrent_streams=max_concurrent_streams)
    factory = http1 if http1_only else PriorKnowledgeHTTPFactory(http1, http2)
    listeners: list[tuple[str, HTTPListener]] = [
        (
            "tcp",
            await HTTPOverTCPListener.create(
                factory, networking, local_address=(host, 0)
            ),
        ),
        (
            "tls",
            await HTTPOverTCPListener.create(
                factory, networking, local_address=(host, 0), tls_config=tls_config
            ),
        ),
    ]
    if quic:
        listeners.append(
            (
                "quic",
                await HTTPOverQUICListener.create(
                    HTTP3ServerFactory(),
                    networking,
                    local_address=(host, 0),
                    tls_config=tls_config,
                ),
            )
        )
    addresses = {name: listener.local_addresses[0] for name, listener in listeners}
    async with anyio.create_task_group() as group:
        for name, listener in listeners:
            group.start_soon(listener.serve, app.handler(name))
        try:
            yield TestServer(
                app, addresses["tcp"], addresses["tls"], addresses.get("quic")
            )
        finally:
            with anyio.CancelScope(shield=True):
                for _, listener in listeners:
                    await listener.aclose()
            group.cancel_scope.cancel()
