"""ASGIServer: ASGI 3 applications over HTTP/1.1, HTTP/2 and HTTP/3.

The connections, limits, timeouts and shutdown are
:class:`~hcore_io.server._base.HTTPServer`'s; this adds the ASGI side: the
lifespan scope around serving, an
:class:`~hcore_io.server._exchange.Exchange` per request, and a
:class:`~hcore_io.server._websocket.WebSocketExchange` per WebSocket.
"""

from __future__ import annotations

import anyio
from anyio.abc import TaskGroup

from hcore import ServerTLSConfig
from hcore.events import HeadersReceived
from hcore.websocket import is_websocket_request
from hcore_io._limits import Limits, resolve_limits
from hcore_io.connections import HTTPConnection, HTTPStream
from hcore_io.networking import ServerNetworking
from hcore_io.server._base import HTTPServer
from hcore_io.server._exchange import ConnectionInfo, Exchange
from hcore_io.server._lifespan import Lifespan
from hcore_io.server._types import ASGIApp
from hcore_io.server._websocket import WebSocketExchange, WebSocketOptions

__all__ = ("ASGIServer",)


class ASGIServer(HTTPServer[ConnectionInfo]):
    """Serves an ASGI 3 application over HTTP/1.1, HTTP/2 and HTTP/3.

    Run it with ``await server.serve(["https://127.0.0.1:8443"])`` (or
    ``task_group.start(server.serve, endpoints)``, which returns the bound
    endpoints) and stop it with :meth:`shutdown`.

    :param app: the application.
    :param limits: every bound (:class:`~hcore_io.Limits`); its defaults
        if omitted.  The limit keyword arguments below and those of
        :class:`~hcore_io.server.HTTPServer` override its fields when given
        (not ``None``).
    :param max_body_size: overrides ``limits.max_body_size``: largest
        request body; a larger one gets 413.
    :param lifespan: ``"auto"`` (use the lifespan scope if the application
        speaks it), ``"on"`` (it must) or ``"off"``.
    :param root_path: the ASGI ``root_path`` of every request.
    :param websocket_max_message_size: overrides
        ``limits.websocket_max_message_size``: largest WebSocket message
        received (after decompression); a larger one closes the WebSocket
        with 1009.
    :param websocket_deflate: agree to permessage-deflate when offered.

    The other parameters are :class:`~hcore_io.server.HTTPServer`'s:
    ``tls_config``, ``networking``, ``http1``, ``http1_implementation``,
    ``http2``, ``http3``,
    ``max_connections``, ``max_concurrent_streams``, ``max_header_size``,
    ``keep_alive_timeout``, ``request_header_timeout``, ``shutdown_timeout``
    and ``max_buffered_data``.

    :raises ValueError: if no HTTP version is enabled or a limit is not positive.
    """

    # WebSockets over HTTP/2 need extended CONNECT (RFC 8441 §3); HTTP/3's
    # is advertised by aioquic itself (RFC 9220 §3).
    _extended_connect = True

    def __init__(
        self,
        app: ASGIApp,
        *,
        tls_config: ServerTLSConfig | None = None,
        networking: ServerNetworking | None = None,
        http1: bool = True,
        http1_implementation: str | None = None,
        http2: bool = True,
        http3: bool = True,
        limits: Limits | None = None,
        max_connections: int | None = None,
        max_concurrent_streams: int | None = None,
        max_header_size: int | None = None,
        max_body_size: int | None = None,
        keep_alive_timeout: float | None = None,
        request_header_timeout: float | None = None,
        shutdown_timeout: float | None = None,
        lifespan: str = "auto",
        root_path: str = "",
        max_buffered_data: int | None = None,
        websocket_max_message_size: int | None = None,
        websocket_deflate: bool = True,
    ) -> None:
        super().__init__(
            tls_config=tls_config,
            networking=networking,
            http1=http1,
            http1_implementation=http1_implementation,
            http2=http2,
            http3=http3,
            limits=resolve_limits(
                limits,
                max_connections=max_connections,
                max_concurrent_streams=max_concurrent_streams,
                max_header_size=max_header_size,
                max_body_size=max_body_size,
                keep_alive_timeout=keep_alive_timeout,
                request_header_timeout=request_header_timeout,
                shutdown_timeout=shutdown_timeout,
                max_buffered_data=max_buffered_data,
                websocket_max_message_size=websocket_max_message_size,
            ),
        )
        self._app = app
        self._max_body_size = self.limits.max_body_size
        self._root_path = root_path
        self._lifespan = Lifespan(app, lifespan)
        self._websocket = WebSocketOptions(
            max_message_size=self.limits.websocket_max_message_size,
            deflate=websocket_deflate,
            close_timeout=self.limits.websocket_close_timeout,
        )
        # The WebSockets open, told to close when shutdown begins.
        self._websockets: set[WebSocketExchange] = set()

    async def _startup(self, task_group: TaskGroup) -> None:
        await self._lifespan.startup(task_group)

    async def _cleanup(self) -> None:
        await self._lifespan.shutdown()

    def _release(self) -> None:
        self._lifespan.close()

    async def _going_away(self) -> None:
        # RFC 6455 §7.4.1: 1001, the server is going away.  Concurrently: a
        # client that reads nothing must not hold up the others' closes.
        async with anyio.create_task_group() as group:
            for socket in list(self._websockets):
                group.start_soon(socket.go_away)

    def _context(
        self, connection: HTTPConnection, extra_headers: tuple[tuple[bytes, bytes], ...]
    ) -> ConnectionInfo:
        return ConnectionInfo(
            http_version=connection.http_version,
            client=connection.remote_address,
            server=connection.local_address,
            extra_headers=extra_headers,
            max_body_size=self._max_body_size,
            body_timeout=self.limits.body_timeout,
            root_path=self._root_path,
            state=self._lifespan.state if self._lifespan.supported else None,
        )

    async def _serve_stream(
        self, stream: HTTPStream, request: HeadersReceived, context: ConnectionInfo
    ) -> None:
        # Made first: its look at the fields tells whether the request may
        # be a WebSocket one, which saves most requests a look of its own.
        exchange = Exchange(stream, request.headers, request.end_stream, context)
        if exchange.may_be_websocket and is_websocket_request(request.headers):
            socket = WebSocketExchange(
                stream, request.headers, context, self._websocket
            )
            self._websockets.add(socket)
            try:
                if self._is_closing():
                    await socket.go_away()
                await socket.run(self._app)
            finally:
                self._websockets.discard(socket)
            return
        await exchange.run(self._app)
