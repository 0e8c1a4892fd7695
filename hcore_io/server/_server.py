"""ASGIServer: ASGI 3 applications over HTTP/1.1, HTTP/2 and HTTP/3.

The connections, limits, timeouts and shutdown are
:class:`~hcore_io.server._base.HTTPServer`'s; this adds the ASGI side: the
lifespan scope around serving, and an
:class:`~hcore_io.server._exchange.Exchange` per request.
"""

from __future__ import annotations

from anyio.abc import TaskGroup

from hcore import ServerTLSConfig
from hcore.events import HeadersReceived
from hcore_io.connections import DEFAULT_MAX_BUFFERED_DATA, HTTPConnection, HTTPStream
from hcore_io.networking import ServerNetworking
from hcore_io.server._base import HTTPServer
from hcore_io.server._exchange import ConnectionInfo, Exchange
from hcore_io.server._lifespan import Lifespan
from hcore_io.server._types import ASGIApp

__all__ = ("ASGIServer",)


class ASGIServer(HTTPServer[ConnectionInfo]):
    """Serves an ASGI 3 application over HTTP/1.1, HTTP/2 and HTTP/3.

    Run it with ``await server.serve(["https://127.0.0.1:8443"])`` (or
    ``task_group.start(server.serve, endpoints)``, which returns the bound
    endpoints) and stop it with :meth:`shutdown`.

    :param app: the application.
    :param max_body_size: largest request body; a larger one gets 413.
    :param lifespan: ``"auto"`` (use the lifespan scope if the application
        speaks it), ``"on"`` (it must) or ``"off"``.
    :param root_path: the ASGI ``root_path`` of every request.

    The other parameters are :class:`~hcore_io.server.HTTPServer`'s:
    ``tls_config``, ``networking``, ``http1``, ``http2``, ``http3``,
    ``max_connections``, ``max_concurrent_streams``, ``max_header_size``,
    ``keep_alive_timeout``, ``request_header_timeout``, ``shutdown_timeout``
    and ``max_buffered_data``.

    :raises ValueError: if no HTTP version is enabled or a limit is not positive.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tls_config: ServerTLSConfig | None = None,
        networking: ServerNetworking | None = None,
        http1: bool = True,
        http2: bool = True,
        http3: bool = True,
        max_connections: int = 1000,
        max_concurrent_streams: int = 100,
        max_header_size: int = 64 * 1024,
        max_body_size: int = 100 * 1024 * 1024,
        keep_alive_timeout: float = 5.0,
        request_header_timeout: float = 10.0,
        shutdown_timeout: float = 30.0,
        lifespan: str = "auto",
        root_path: str = "",
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> None:
        super().__init__(
            tls_config=tls_config,
            networking=networking,
            http1=http1,
            http2=http2,
            http3=http3,
            max_connections=max_connections,
            max_concurrent_streams=max_concurrent_streams,
            max_header_size=max_header_size,
            keep_alive_timeout=keep_alive_timeout,
            request_header_timeout=request_header_timeout,
            shutdown_timeout=shutdown_timeout,
            max_buffered_data=max_buffered_data,
        )
        if not max_body_size > 0:
            raise ValueError(f"max_body_size must be positive, not {max_body_size!r}")
        self._app = app
        self._max_body_size = max_body_size
        self._root_path = root_path
        self._lifespan = Lifespan(app, lifespan)

    async def _startup(self, task_group: TaskGroup) -> None:
        await self._lifespan.startup(task_group)

    async def _cleanup(self) -> None:
        await self._lifespan.shutdown()

    def _release(self) -> None:
        self._lifespan.close()

    def _context(
        self, connection: HTTPConnection, extra_headers: tuple[tuple[bytes, bytes], ...]
    ) -> ConnectionInfo:
        return ConnectionInfo(
            http_version=connection.http_version,
            client=connection.remote_address,
            server=connection.local_address,
            extra_headers=extra_headers,
            max_body_size=self._max_body_size,
            root_path=self._root_path,
            state=self._lifespan.state if self._lifespan.supported else None,
        )

    async def _serve_stream(
        self, stream: HTTPStream, request: HeadersReceived, context: ConnectionInfo
    ) -> None:
        exchange = Exchange(stream, request.headers, request.end_stream, context)
        await exchange.run(self._app)
