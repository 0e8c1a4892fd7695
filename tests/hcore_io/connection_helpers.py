"""A small HTTP app and client helpers for the connection and interop tests.

The app serves each request of a connection in a task of its own, through
:meth:`HTTPConnection.accept_stream`:

- ``GET /bytes/N``: ``N`` bytes of :func:`pattern`, sent in 1 MiB pieces;
- ``POST /digest``: the SHA-256 (hex) of the request body;
- ``POST /echo``: the request body back, piece by piece as it arrives;
- ``GET /silent``: never answers;
- ``GET /reset``: 64 KiB of body, then a stream reset;
- ``GET /wait``: waits for the request's next event (the client's reset);
- ``POST /sink``: headers at once, then never reads the body.

Anything else gets 404.  ``Expect: 100-continue`` is answered with a 100
first.  ``App.paths`` records the paths requested and ``App.endings`` the
last event of each request stream, so tests can check what the server saw.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from hcore import Address, ClientTLSConfig, Headers, ServerTLSConfig
from hcore.events import (
    DataReceived,
    Event,
    HeadersReceived,
    StreamResetReceived,
    TrailersReceived,
)
from hcore.protocols import HTTPOverTCPFactory
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore_io import NetworkError
from hcore_io.connections import (
    DEFAULT_MAX_BUFFERED_DATA,
    HTTPConnection,
    HTTPListener,
    HTTPOpener,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
    HTTPStream,
    StreamReset,
)
from hcore_io.networking import ClientNetworking, MemoryNetworking, ServerNetworking

CHUNK = 1 << 20
_PATTERN = bytes(range(256)) * 4096  # 1 MiB


def pattern(size: int) -> bytes:
    """Deterministic body bytes: 0..255 repeated."""
    whole, rest = divmod(size, len(_PATTERN))
    return _PATTERN * whole + _PATTERN[:rest]


def digest(data: bytes) -> str:
    """SHA-256 of ``data`` in hex."""
    return hashlib.sha256(data).hexdigest()


def request_headers(
    method: str,
    path: str,
    *,
    authority: str = "localhost",
    scheme: str = "https",
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> Headers:
    """A request header block with the pseudo-headers first."""
    return (
        (b":method", method.encode()),
        (b":scheme", scheme.encode()),
        (b":authority", authority.encode()),
        (b":path", path.encode()),
        *extra,
    )


def header(headers: Headers, name: bytes) -> bytes | None:
    """The first value of a header, or ``None``."""
    for key, value in headers:
        if key == name:
            return value
    return None


@dataclass
class App:
    """The test app; one instance may serve many connections."""

    #: Paths requested, in order of arrival.
    paths: list[str] = field(default_factory=list)
    #: Events that ended a request stream on the server side, by stream id.
    endings: dict[int, Event] = field(default_factory=dict)
    #: Errors the app saw while answering (reset streams, closed connections).
    errors: list[BaseException] = field(default_factory=list)
    #: Set when the first error is recorded.
    failed: anyio.Event = field(default_factory=anyio.Event)

    async def __call__(self, connection: HTTPConnection) -> None:
        """Serve a connection: each request in its own task."""
        async with anyio.create_task_group() as group:
            # Bounded by the requests the peer sends before it closes.
            while (stream := await connection.accept_stream()) is not None:
                group.start_soon(self.answer, stream)

    async def answer(self, stream: HTTPStream) -> None:
        """Answer one request."""
        async with stream:
            try:
                await self._answer(stream)
            except (StreamReset, NetworkError) as exc:
                self.errors.append(exc)
                self.failed.set()

    async def _answer(self, stream: HTTPStream) -> None:
        first = await stream.receive_event()
        assert isinstance(first, HeadersReceived), first
        path = (header(first.headers, b":path") or b"").decode()
        self.paths.append(path)
        ok = ((b":status", b"200"),)
        if header(first.headers, b"expect") == b"100-continue":
            # RFC 9110 §10.1.1: let the client send its body now.
            await stream.send_headers(((b":status", b"100"),))
        if path == "/sink":
            await stream.send_headers(ok)
            await anyio.sleep_forever()
        elif path == "/silent":
            await anyio.sleep_forever()
        elif path == "/reset":
            await stream.send_headers(ok)
            await stream.send_data(pattern(65536))
            await stream.send_stream_reset()
            return
        elif path == "/wait":
            # Until the client gives up: its reset is the next event.
            self.endings[stream.stream_id] = await stream.receive_event()
            return
        if path == "/echo":
            await stream.send_headers(ok, end_stream=first.end_stream)
            # Bounded by the request body.
            async for event in stream:
                self.endings[stream.stream_id] = event
                if isinstance(event, DataReceived):
                    await stream.send_data(event.data, end_stream=event.end_stream)
                elif isinstance(event, TrailersReceived):
                    await stream.send_data(b"", end_stream=True)
            return
        if not first.end_stream:
            hasher = hashlib.sha256()
            # Bounded by the request body.
            async for event in stream:
                if isinstance(event, DataReceived):
                    hasher.update(event.data)
                self.endings[stream.stream_id] = event
                if isinstance(event, StreamResetReceived):
                    return
            hex_digest = hasher.hexdigest()
        else:
            self.endings[stream.stream_id] = first
            hex_digest = digest(b"")
        if path == "/digest":
            await stream.send_headers(ok)
            await stream.send_data(hex_digest.encode(), end_stream=True)
        elif path.startswith("/bytes/"):
            size = int(path.removeprefix("/bytes/"))
            length = (b"content-length", str(size).encode())
            await stream.send_headers((*ok, length), end_stream=size == 0)
            sent = 0
            # Bounded by size.
            while sent < size:
                piece = pattern(min(CHUNK, size - sent))
                sent += len(piece)
                await stream.send_data(piece, end_stream=sent == size)
        else:
            await stream.send_headers(((b":status", b"404"),), end_stream=True)


@dataclass
class Response:
    """What :func:`fetch` got."""

    status: int
    headers: Headers
    body: bytes
    #: Every event, in order.
    events: list[Event]


async def fetch(
    connection: HTTPConnection,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    authority: str = "localhost",
    scheme: str = "https",
) -> Response:
    """Run one request on its own stream and read the whole response.

    The body is sent by a second task while the response is read, as a
    client must when the server may answer before the body is complete.
    """
    stream = await connection.open_stream(
        request_headers(method, path, authority=authority, scheme=scheme),
        end_stream=not body,
    )
    async with stream:
        if not body:
            return await read_response(stream)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(send_body, stream, body)
                response = await read_response(stream)
        except BaseExceptionGroup as errors:
            # Raise what went wrong as it is, for pytest.raises.
            if len(errors.exceptions) == 1:
                raise errors.exceptions[0] from None
            raise
        return response


async def send_body(stream: HTTPStream, body: bytes) -> None:
    """Send ``body`` in 1 MiB pieces, ending the stream."""
    for offset in range(0, len(body), CHUNK):
        piece = body[offset : offset + CHUNK]
        await stream.send_data(piece, end_stream=offset + CHUNK >= len(body))


async def read_response(stream: HTTPStream) -> Response:
    """Read a response until its end; its data events must belong to ``stream``."""
    events: list[Event] = []
    status = 0
    headers: Headers = ()
    chunks: list[bytes] = []
    # Bounded: the iteration stops at the response's last event.
    async for event in stream:
        assert getattr(event, "stream_id", stream.stream_id) == stream.stream_id
        events.append(event)
        if isinstance(event, HeadersReceived):
            headers = event.headers
            status = int(header(headers, b":status") or b"0")
        elif isinstance(event, DataReceived):
            chunks.append(event.data)
    return Response(status, headers, b"".join(chunks), events)


#: The versions every per-version test runs on.
VERSIONS = ("1.1", "2", "3")


@dataclass
class Served:
    """A listener serving a handler, and one client connection to it."""

    connection: HTTPConnection
    listener: HTTPListener
    opener: HTTPOpener
    address: Address


@asynccontextmanager
async def serving(
    version: str,
    handler: Callable[[HTTPConnection], Awaitable[object]],
    *,
    server_tls: ServerTLSConfig,
    client_tls: ClientTLSConfig,
    networking: ClientNetworking | None = None,
    server_networking: ServerNetworking | None = None,
    tls: bool = False,
    max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
) -> AsyncIterator[Served]:
    """Serve ``handler`` for one HTTP version, and connect to it.

    HTTP/1.1 and HTTP/2 use plain TCP (h2c) unless ``tls``; HTTP/3 always
    uses TLS.  The networking is one :class:`MemoryNetworking` unless given;
    a ``networking`` that can also listen (a socket backend: the tests'
    ``networking`` fixture) serves too, unless ``server_networking`` is given.
    On exit the client connection and the listener are closed and the
    handlers still running are cancelled.
    """
    memory = MemoryNetworking()
    client_net = networking or memory
    server_net = server_networking or (
        networking if isinstance(networking, ServerNetworking) else memory
    )
    assert server_net is not None
    listener: HTTPListener
    opener: HTTPOpener
    server_factory: HTTPOverTCPFactory
    client_factory: HTTPOverTCPFactory
    if version == "3":
        listener = await HTTPOverQUICListener.create(
            HTTP3ServerFactory(),
            server_net,
            local_address=("127.0.0.1", 0),
            tls_config=server_tls,
            max_buffered_data=max_buffered_data,
        )
        opener = HTTPOverQUICOpener(
            HTTP3ClientFactory(),
            networking=client_net,
            tls_config=client_tls,
            max_buffered_data=max_buffered_data,
        )
        tls = True
    else:
        if version == "2":
            server_factory, client_factory = HTTP2ServerFactory(), HTTP2ClientFactory()
        else:
            server_factory, client_factory = HTTP1ServerFactory(), HTTP1ClientFactory()
        listener = await HTTPOverTCPListener.create(
            server_factory,
            server_net,
            local_address=("127.0.0.1", 0),
            tls_config=server_tls if tls else None,
            max_buffered_data=max_buffered_data,
        )
        opener = HTTPOverTCPOpener(
            client_factory,
            networking=client_net,
            tls_config=client_tls,
            max_buffered_data=max_buffered_data,
        )
    address = ("localhost", listener.local_addresses[0][1])
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, handler)
        connection = await opener(address, tls=tls)
        try:
            yield Served(connection, listener, opener, address)
        finally:
            with anyio.CancelScope(shield=True):
                await connection.aclose()
                await listener.aclose()
            group.cancel_scope.cancel()


__all__ = (
    "CHUNK",
    "VERSIONS",
    "App",
    "Response",
    "Served",
    "digest",
    "fetch",
    "header",
    "pattern",
    "read_response",
    "request_headers",
    "send_body",
    "serving",
)
