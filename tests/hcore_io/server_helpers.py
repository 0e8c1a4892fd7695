"""Running an ASGIServer on loopback and fetching from it with HTTPConnection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import anyio

from hcore import ClientTLSConfig, Headers, ServerTLSConfig
from hcore.events import (
    DataReceived,
    Event,
    HeadersReceived,
    InformationalResponseReceived,
    TrailersReceived,
)
from hcore.protocols.http1 import HTTP1ClientFactory
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore.protocols.http3 import HTTP3ClientFactory
from hcore_io.connections import (
    HTTPConnection,
    HTTPOverQUICOpener,
    HTTPOverTCPOpener,
    HTTPStream,
)
from hcore_io.networking import EpollNetworking, SystemNetworking
from hcore_io.server import ASGIApp, ASGIServer

#: "1.1" and "2" over TLS, "h2c" (HTTP/2 with prior knowledge on plain TCP)
#: and "3" over QUIC.
VERSIONS = ("1.1", "2", "h2c", "3")


@dataclass
class Running:
    """A server under test and how to reach it."""

    server: ASGIServer
    http_port: int
    https_port: int
    client_tls: ClientTLSConfig
    #: The socket backend of the server, used by the client connections too.
    networking: SystemNetworking | EpollNetworking | None = None

    async def connect(self, version: str) -> HTTPConnection:
        """Open a client connection speaking ``version`` (see :data:`VERSIONS`)."""
        if version == "3":
            return await HTTPOverQUICOpener(
                HTTP3ClientFactory(),
                networking=self.networking,
                tls_config=self.client_tls,
            )(("127.0.0.1", self.https_port), server_name="localhost")
        factory = HTTP1ClientFactory() if version == "1.1" else HTTP2ClientFactory()
        opener = HTTPOverTCPOpener(
            factory, networking=self.networking, tls_config=self.client_tls
        )
        if version == "h2c":
            return await opener(("127.0.0.1", self.http_port), tls=False)
        return await opener(("127.0.0.1", self.https_port), server_name="localhost")


@asynccontextmanager
async def running(
    app: ASGIApp,
    server_tls: ServerTLSConfig,
    client_tls: ClientTLSConfig,
    *,
    networking: SystemNetworking | EpollNetworking | None = None,
    **options: object,
) -> AsyncIterator[Running]:
    """Serve ``app`` on ``http://127.0.0.1:0`` and ``https://127.0.0.1:0``.

    ``networking`` (a test's ``networking`` fixture) runs the server and the
    client connections of :meth:`Running.connect`.  On exit the server is
    shut down (quickly) if the test did not do it.
    """
    server = ASGIServer(app, tls_config=server_tls, networking=networking, **options)  # type: ignore[arg-type]
    async with anyio.create_task_group() as group:
        http, https = await group.start(
            server.serve, ["http://127.0.0.1:0", "https://127.0.0.1:0"]
        )
        try:
            yield Running(server, http.port, https.port, client_tls, networking)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await server.shutdown(timeout=1)
            group.cancel_scope.cancel()


#: ``serve(app, **options)``: :func:`running` with a test's certificates and
#: socket backend (the ``serve`` fixture).
Serve = Callable[..., AbstractAsyncContextManager[Running]]


def serve_with(
    server_tls: ServerTLSConfig,
    client_tls: ClientTLSConfig,
    networking: SystemNetworking | EpollNetworking,
) -> Serve:
    """Bind :func:`running` to the certificates and backend; the rest varies."""

    def serve(app: ASGIApp, **options: object) -> AbstractAsyncContextManager[Running]:
        return running(app, server_tls, client_tls, networking=networking, **options)

    return serve


@dataclass
class Response:
    """A whole response."""

    status: int
    headers: Headers
    body: bytes
    trailers: Headers = ()
    informational: list[int] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header, or ``None``."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


def request_headers(
    method: str, path: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> Headers:
    """A request header block."""
    return (
        (b":method", method.encode()),
        (b":scheme", b"https"),
        (b":authority", b"localhost"),
        (b":path", path.encode()),
        *extra,
    )


async def read_response(stream: HTTPStream) -> Response:
    """Read a response to its end."""
    response = Response(0, (), b"")
    chunks = []
    # Bounded: iteration stops at the response's end.
    async for event in stream:
        response.events.append(event)
        if isinstance(event, InformationalResponseReceived):
            response.informational.append(int(dict(event.headers)[b":status"]))
        elif isinstance(event, HeadersReceived):
            response.headers = event.headers
            response.status = int(dict(event.headers)[b":status"])
        elif isinstance(event, DataReceived):
            chunks.append(event.data)
        elif isinstance(event, TrailersReceived):
            response.trailers = event.headers
    response.body = b"".join(chunks)
    return response


async def fetch(
    connection: HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> Response:
    """Run one request on its own stream; ``body=None`` sends none."""
    stream = await connection.open_stream(
        request_headers(method, path, extra), end_stream=body is None
    )
    async with stream:
        if body is not None:
            piece = 1 << 20
            for offset in range(0, max(len(body), 1), piece):
                await stream.send_data(
                    body[offset : offset + piece],
                    end_stream=offset + piece >= len(body),
                )
        return await read_response(stream)


__all__ = (
    "VERSIONS",
    "Response",
    "Running",
    "fetch",
    "read_response",
    "request_headers",
    "running",
)
