"""The client's bound on a response body read whole: ``max_response_body_size``.

A hostile server may announce a huge body or send one without end.  A body
read whole (``Response.aread()``, ``Client.request()``) fails with
:exc:`~hcore_io.ResponseBodyTooLarge` before reading when ``content-length``
passes the bound, or as soon as the body read does; the stream is reset
(HTTP/1.1: the connection is not reused; HTTP/2 and HTTP/3: the other
streams of the connection go on) and the pool stays usable.  A body read
piece by piece is not bounded by it.

Each server test runs over HTTP/1.1 and HTTP/2 on TLS and HTTP/3, on
asyncio and Trio, on both socket backends, with a 64 KiB bound.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import HeadersReceived
from hcore.protocols.http1 import HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ServerFactory
from hcore_io import Limits, NetworkError, ReadError, ResponseBodyTooLarge
from hcore_io.client import (
    URL,
    Client,
    ConnectionPool,
    Request,
    Response,
    ResponseStream,
    Timeouts,
)
from hcore_io.client._models import body_length
from hcore_io.connections import (
    HTTPConnection,
    HTTPListener,
    HTTPOverQUICListener,
    HTTPOverTCPListener,
    HTTPStream,
    PriorKnowledgeHTTPFactory,
    StreamReset,
)

from .conftest import SocketBackend
from .connection_helpers import pattern

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

_LIMIT = 64 * 1024
# The server's pieces; every version hands the client pieces no larger.
_PIECE = 16 * 1024
# A response piece read past the bound at most, with room to spare.
_SLACK = 64 * 1024
# What "endless" sends before giving up: far more than any window or
# socket buffer, so a client that did not stop would read it all.
_ENDLESS_CAP = 64 * 1024 * 1024
_TIMEOUTS = Timeouts(connect=10.0, read=10.0, write=10.0, pool=10.0)
_VERSIONS = ("1.1", "2", "3")


@dataclass
class _Sent:
    """What the server sent for one request."""

    bytes: int = 0
    #: Set when the client stopped the body (reset, or closed the connection).
    stopped: anyio.Event = field(default_factory=anyio.Event)


@dataclass
class _App:
    """``/body?size=N&announce=0|1``: ``N`` bytes of :func:`pattern` (``N`` of
    -1: without end, up to ``_ENDLESS_CAP``), with ``content-length`` when
    announced; ``/big-head``: a 200 announcing 1 GiB, for HEAD."""

    #: Connections accepted.
    connections: int = 0
    #: By request target, the latest one's.
    sent: dict[str, _Sent] = field(default_factory=dict)

    async def __call__(self, connection: HTTPConnection) -> None:
        self.connections += 1
        async with anyio.create_task_group() as group:
            # Bounded by the requests the client sends before it closes.
            while (stream := await connection.accept_stream()) is not None:
                group.start_soon(self._answer, stream)

    async def _answer(self, stream: HTTPStream) -> None:
        async with stream:
            head = await stream.receive_event()
            assert isinstance(head, HeadersReceived)
            target = dict(head.headers)[b":path"].decode()
            # The latest request of each target (each counts its own).
            sent = self.sent[target] = _Sent()
            try:
                await self._send(stream, target, sent)
            except (StreamReset, NetworkError):
                sent.stopped.set()

    async def _send(self, stream: HTTPStream, target: str, sent: _Sent) -> None:
        parts = urlsplit(target)
        if parts.path == "/big-head":
            length = str(1 << 30).encode()
            await stream.send_headers(
                [(b":status", b"200"), (b"content-length", length)], end_stream=True
            )
            return
        query = parse_qs(parts.query)
        size = int(query["size"][0])
        headers = [(b":status", b"200")]
        if query.get("announce") == ["1"]:
            headers.append((b"content-length", str(size).encode()))
        await stream.send_headers(headers)
        total = _ENDLESS_CAP if size < 0 else size
        # Bounded by total.
        while sent.bytes < total:
            piece = pattern(min(_PIECE, total - sent.bytes))
            sent.bytes += len(piece)
            await stream.send_data(piece, end_stream=sent.bytes == total)


@dataclass
class _Server:
    app: _App
    base: str


@asynccontextmanager
async def _serve(
    networking: SocketBackend, tls_config: ServerTLSConfig, version: str
) -> AsyncIterator[_Server]:
    """Serve :class:`_App` over TLS (HTTP/1.1 and HTTP/2) or QUIC (HTTP/3)."""
    app = _App()
    listener: HTTPListener
    if version == "3":
        listener = await HTTPOverQUICListener.create(
            HTTP3ServerFactory(),
            networking,
            local_address=("127.0.0.1", 0),
            tls_config=tls_config,
        )
    else:
        listener = await HTTPOverTCPListener.create(
            PriorKnowledgeHTTPFactory(HTTP1ServerFactory(), HTTP2ServerFactory()),
            networking,
            local_address=("127.0.0.1", 0),
            tls_config=tls_config,
        )
    port = listener.local_addresses[0][1]
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, app)
        try:
            yield _Server(app, f"https://127.0.0.1:{port}")
        finally:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            group.cancel_scope.cancel()


def _pool(
    networking: SocketBackend, tls: ClientTLSConfig, version: str
) -> ConnectionPool:
    return ConnectionPool(
        networking,
        tls_config=tls,
        http_versions=(version,),
        max_response_body_size=_LIMIT,
    )


async def _get(pool: ConnectionPool, url: str, method: str = "GET") -> Response:
    response = await pool.handle_request(Request(method, URL(url), timeouts=_TIMEOUTS))
    assert response.status == 200
    return response


async def _pool_still_works(pool: ConnectionPool, server: _Server) -> None:
    response = await _get(pool, f"{server.base}/body?size={_LIMIT}&announce=1")
    assert await response.aread() == pattern(_LIMIT)


@pytest.mark.parametrize("version", _VERSIONS)
async def test_an_announced_length_over_the_bound_fails_before_reading(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        _serve(networking, server_tls_config, version) as server,
        _pool(networking, client_tls_config, version) as pool,
    ):
        target = f"/body?size={_ENDLESS_CAP}&announce=1"
        response = await _get(pool, server.base + target)
        assert response.http_version == version
        assert response.stream.content_length == _ENDLESS_CAP
        with pytest.raises(ResponseBodyTooLarge, match="content-length") as caught:
            await response.aread()
        assert caught.value.limit == _LIMIT
        assert caught.value.content_length == _ENDLESS_CAP
        assert isinstance(caught.value, ReadError)
        # Nothing of the body was read, nothing kept; asked again, the same.
        assert response.stream.bytes_read == 0
        assert response.content is None
        with pytest.raises(ResponseBodyTooLarge):
            await response.aread()
        await _pool_still_works(pool, server)
        sent = server.app.sent[target]
        # Bounded by the window (HTTP/2, HTTP/3) or the socket buffers.
        assert sent.bytes < _ENDLESS_CAP
        with anyio.fail_after(10):
            await sent.stopped.wait()
        errors = sum(c.errors for c in pool.metrics.connections)
        if version == "1.1":
            # The connection was closed, not reused: a second one served.
            assert server.app.connections == 2
            assert pool.metrics.closed == 1
            assert errors == 0
        else:
            # Only the stream was reset: the connection served on.
            assert server.app.connections == 1
            assert errors == 1


@pytest.mark.parametrize("version", _VERSIONS)
async def test_a_body_growing_past_the_bound_stops_near_it(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        _serve(networking, server_tls_config, version) as server,
        _pool(networking, client_tls_config, version) as pool,
    ):
        target = "/body?size=-1"
        response = await _get(pool, server.base + target)
        assert response.stream.content_length is None
        tracemalloc.start()
        try:
            with pytest.raises(ResponseBodyTooLarge, match="larger than") as caught:
                await response.aread()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert caught.value.content_length is None
        # The read stopped at the first piece past the bound ...
        assert _LIMIT < response.stream.bytes_read <= _LIMIT + _SLACK
        assert response.content is None
        # ... and what was held meanwhile stayed far below the body
        # (an unbounded read would have held 64 MiB).
        assert peak < 8 << 20
        sent = server.app.sent[target]
        with anyio.fail_after(10):
            await sent.stopped.wait()
        assert sent.bytes < _ENDLESS_CAP
        await _pool_still_works(pool, server)
        assert server.app.connections == (2 if version == "1.1" else 1)


@pytest.mark.parametrize("version", ["2", "3"])
async def test_the_other_streams_of_the_connection_go_on(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        _serve(networking, server_tls_config, version) as server,
        _pool(networking, client_tls_config, version) as pool,
    ):
        # Read piece by piece, a body larger than the bound is fine.  (Under
        # max_buffered_data, so that its queue, unread meanwhile, does not
        # hold up the connection's other streams: see the connection
        # driver's "Bounded memory".)
        size = 4 * _LIMIT
        other = await _get(pool, f"{server.base}/body?size={size}&announce=1")
        first = await other.stream.read_chunk()
        assert first
        for target in ("/body?size=-1", f"/body?size={size}&announce=1"):
            response = await _get(pool, server.base + target)
            with pytest.raises(ResponseBodyTooLarge):
                await response.aread()
        rest = b"".join([chunk async for chunk in other.stream])
        assert first + rest == pattern(size)
        assert server.app.connections == 1
        metrics = pool.metrics.connections
        assert len(metrics) == 1 and metrics[0].errors == 2
        await _pool_still_works(pool, server)


@pytest.mark.parametrize("version", _VERSIONS)
async def test_bodies_within_the_bound_and_streamed_ones_are_read(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        _serve(networking, server_tls_config, version) as server,
        _pool(networking, client_tls_config, version) as pool,
    ):
        # Exactly the bound, announced or not, is read whole.
        for announce in ("0", "1"):
            url = f"{server.base}/body?size={_LIMIT}&announce={announce}"
            assert await (await _get(pool, url)).aread() == pattern(_LIMIT)
        # A HEAD's content-length describes no body to read.
        head = await _get(pool, f"{server.base}/big-head", method="HEAD")
        assert head.stream.content_length is None
        assert await head.aread() == b""
        # Streaming is not bounded by max_response_body_size.
        size = 4 * _LIMIT
        async with await _get(pool, f"{server.base}/body?size={size}") as response:
            read = b"".join([chunk async for chunk in response.stream])
        assert read == pattern(size)
        # Nor is a read whose stream's bound was raised first.
        response = await _get(pool, f"{server.base}/body?size={size}&announce=1")
        response.stream.max_size = None
        assert await response.aread() == pattern(size)
        assert sum(c.errors for c in pool.metrics.connections) == 0
        assert server.app.connections == 1


async def test_the_client_bounds_request_and_its_shorthands(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        _serve(networking, server_tls_config, "2") as server,
        Client(
            networking=networking,
            tls_config=client_tls_config,
            timeouts=_TIMEOUTS,
            limits=Limits(max_response_body_size=1 << 20),
            max_response_body_size=_LIMIT,
        ) as client,
    ):
        assert client.pool.limits.max_response_body_size == _LIMIT
        with pytest.raises(ResponseBodyTooLarge):
            await client.get(f"{server.base}/body?size=-1")
        with pytest.raises(ResponseBodyTooLarge):
            await client.request("GET", f"{server.base}/body?size={_LIMIT + 1}")
        response = await client.get(f"{server.base}/body?size=100&announce=1")
        assert response.content == pattern(100)
        assert client.retry_count == 0


def test_the_bound_is_a_limit_and_a_keyword_argument(
    networking: SocketBackend,
) -> None:
    assert Limits().max_response_body_size == 100 * 1024 * 1024
    limits = Limits(max_response_body_size=1000)
    assert ConnectionPool(networking, limits=limits).limits == limits
    pool = ConnectionPool(networking, limits=limits, max_response_body_size=10)
    assert pool.limits.max_response_body_size == 10
    assert ConnectionPool(networking).limits.max_response_body_size == 100 << 20
    with pytest.raises(ValueError, match="max_response_body_size"):
        ConnectionPool(networking, max_response_body_size=0)
    client = Client(networking=networking, limits=limits)
    assert client.pool.limits.max_response_body_size == 1000


@pytest.mark.parametrize(
    ("method", "status", "headers", "expected"),
    [
        ("GET", 200, [(b"content-length", b"42")], 42),
        ("GET", 200, [], None),
        ("GET", 200, [(b"content-length", b"x")], None),
        ("HEAD", 200, [(b"content-length", b"42")], None),
        ("GET", 204, [(b"content-length", b"42")], None),
        ("GET", 304, [(b"content-length", b"42")], None),
        ("CONNECT", 200, [(b"content-length", b"42")], None),
        ("CONNECT", 407, [(b"content-length", b"42")], 42),
    ],
)
def test_the_announced_length_follows_rfc_9110(
    method: str, status: int, headers: list[tuple[bytes, bytes]], expected: int | None
) -> None:
    request = Request(method, URL("https://example.com/"))
    assert body_length(request, status, headers) == expected


async def test_aread_bounds_the_rest_of_a_body_partly_read() -> None:
    pieces = [b"a" * 50, b"b" * 50, b"c" * 50]
    closed: list[bool] = []

    async def receive() -> bytes | None:
        return pieces.pop(0) if pieces else None

    async def close() -> None:
        closed.append(True)

    stream = ResponseStream(receive, close, max_size=100, content_length=150)
    # 150 announced, 50 read: the 100 left are within the bound.
    assert await stream.read_chunk() == b"a" * 50
    assert await stream.aread() == b"b" * 50 + b"c" * 50
    assert closed == [True]
    # Without a fail callback, a body growing past the bound still resets.
    pieces[:] = [b"x" * 60, b"y" * 60]
    closed.clear()
    stream = ResponseStream(receive, close, max_size=100)
    with pytest.raises(ResponseBodyTooLarge) as caught:
        await stream.aread()
    assert caught.value.content_length is None and caught.value.limit == 100
    assert closed == [True] and stream.bytes_read == 120
