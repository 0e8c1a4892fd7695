"""The part of every hcore server that accepts and runs connections.

Theory of operation
-------------------
:meth:`HTTPServer.serve` runs the subclass's startup, binds every endpoint
(an ``https`` endpoint is a TLS listener for HTTP/1.1 and HTTP/2 and a QUIC
listener for HTTP/3 on the same port number) and serves until
:meth:`HTTPServer.shutdown`.  Each accepted connection runs in a task of
its own (a plain asyncio task on asyncio: see
``hcore_io.networking._connection_tasks``):

* HTTP/1.1 handles its exchanges one after the other in that task: no task
  per request.  The first request's head must arrive within
  ``request_header_timeout``, each next one within ``keep_alive_timeout``.
* HTTP/2 and HTTP/3 accept streams in that task and run each on a worker
  task of the connection (``_stream_workers``: an idle worker takes the
  next stream, a new one starts only when all are busy); more than
  ``max_concurrent_streams`` at once are refused (``REFUSED_STREAM``, safe
  to retry).  A connection with no stream in flight for
  ``keep_alive_timeout`` is closed (GOAWAY).

Listening and accepting are the public listeners' of
:mod:`hcore_io.connections` (:class:`~hcore_io.connections.HTTPOverTCPListener`
with h2c sniffing, :class:`~hcore_io.connections.HTTPOverQUICListener`);
the server keeps its own record of the connections they hand it.

Shutdown closes the listeners (they stop accepting; a QUIC listener keeps
its UDP socket open for the connections it has), closes every connection
gracefully (:meth:`~hcore_io.connections.HTTPConnection.close_gracefully`:
GOAWAY on HTTP/2 and HTTP/3, ``Connection: close`` on HTTP/1.1), closes
idle connections at once and lets the others finish their streams within
``shutdown_timeout``; what is still running then is cancelled.  Finally the
subclass's cleanup runs.

What a request stream gets is the subclass's business
(:meth:`HTTPServer._serve_stream`): an ASGI exchange, or a tunnel.

Binding endpoints is in :mod:`hcore_io.server._binding`, the
per-connection serving loops in :mod:`hcore_io.server._serving`.
"""

from __future__ import annotations

import functools
import logging
from abc import ABCMeta, abstractmethod
from collections.abc import Awaitable, Sequence
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from hcore import HCoreError, ServerTLSConfig
from hcore.events import HeadersReceived
from hcore.protocols import HTTPOverTCPFactory, default_registry
from hcore_io._limits import Limits, resolve_limits
from hcore_io.connections import HTTPConnection, HTTPListener, HTTPStream
from hcore_io.networking import ServerNetworking
from hcore_io.server._binding import bind_endpoint, make_tcp_factory
from hcore_io.server._endpoints import Endpoint, parse_endpoint
from hcore_io.server._serving import (
    ConnectionState,
    answer_too_large,
    field_section_size,
    refuse_connection,
    serve_multiplexed,
    serve_sequential,
)

__all__ = ("HTTPServer",)

#: What a subclass keeps per connection and hands to each of its streams.
_Context = TypeVar("_Context")

logger = logging.getLogger("hcore.server")


class HTTPServer(Generic[_Context], metaclass=ABCMeta):
    """Accepts HTTP/1.1, HTTP/2 and HTTP/3 connections and runs their streams.

    Subclasses say what a request stream gets (:meth:`_serve_stream`), what
    each connection keeps (:meth:`_context`), and may start and stop things
    around serving (:meth:`_startup`, :meth:`_cleanup`).

    :param tls_config: the certificate for ``https`` endpoints.
    :param networking: the backend;
        :class:`~hcore_io.networking.SystemNetworking` if omitted.
    :param http1: serve HTTP/1.1.
    :param http1_implementation: the name of the HTTP/1.1 implementation in
        :data:`hcore.protocols.default_registry` (``"h11"``, the default, or
        e.g. ``"httptools"``); its server factory is made with
        ``max_header_size``, ``max_header_count`` and ``max_pipelined_size``,
        as hcore's HTTP/1.1 factories take them.
    :param http2: serve HTTP/2 (by ALPN over TLS, with prior knowledge on
        plain TCP).
    :param http3: serve HTTP/3 on ``https`` endpoints, advertised with
        ``Alt-Svc``.
    :param limits: every bound (:class:`~hcore_io.Limits`); its defaults
        if omitted.
    :param max_connections: overrides ``limits.max_connections``:
        connections served at once; more get a 503 and are closed.
    :param max_concurrent_streams: overrides ``limits.max_concurrent_streams``:
        requests in flight per HTTP/2 or HTTP/3 connection.
    :param max_header_size: overrides ``limits.max_header_size``: largest
        request head (HTTP/1.1 and HTTP/3: 431 beyond) or header list
        (HTTP/2: the stream is reset).
    :param keep_alive_timeout: overrides ``limits.keep_alive_timeout``:
        seconds an idle connection is kept.
    :param request_header_timeout: overrides
        ``limits.request_header_timeout``: seconds a new connection gets to
        send its first request head (and a plain-TCP one its first bytes).
    :param shutdown_timeout: overrides ``limits.shutdown_timeout``: seconds
        requests in flight get to finish at shutdown.
    :param max_buffered_data: overrides ``limits.max_buffered_data``: each
        connection's per-queue bound.

    An individual keyword argument given (not ``None``) wins over the field
    of ``limits``.

    :raises ValueError: if no HTTP version is enabled or a limit is not positive.
    """

    #: Whether HTTP/2 advertises extended CONNECT (RFC 8441
    #: SETTINGS_ENABLE_CONNECT_PROTOCOL), for subclasses serving WebSockets.
    _extended_connect = False

    def __init__(
        self,
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
        keep_alive_timeout: float | None = None,
        request_header_timeout: float | None = None,
        shutdown_timeout: float | None = None,
        max_buffered_data: int | None = None,
    ) -> None:
        if not (http1 or http2 or http3):
            raise ValueError("enable at least one HTTP version")
        limits = resolve_limits(
            limits,
            max_connections=max_connections,
            max_concurrent_streams=max_concurrent_streams,
            max_header_size=max_header_size,
            keep_alive_timeout=keep_alive_timeout,
            request_header_timeout=request_header_timeout,
            shutdown_timeout=shutdown_timeout,
            max_buffered_data=max_buffered_data,
        )
        #: The bounds in force (the keyword arguments applied).
        self.limits = limits
        self._tls_config = tls_config
        self._networking = networking
        self._http1, self._http2, self._http3 = http1, http2, http3
        try:
            self._http1_maker = default_registry.get("1.1", http1_implementation)
        except LookupError as exc:
            raise ValueError(str(exc)) from None
        self._max_connections = limits.max_connections
        self._max_streams = limits.max_concurrent_streams
        self._max_header_size = limits.max_header_size
        self._keep_alive_timeout = limits.keep_alive_timeout
        self._request_header_timeout = limits.request_header_timeout
        self._shutdown_timeout = limits.shutdown_timeout
        self._max_buffered_data = limits.max_buffered_data
        self._endpoints: list[Endpoint] = []
        # Each listener, with the fields every response on its connections
        # carries (Alt-Svc on the TCP side of an https endpoint).
        self._listeners: list[tuple[HTTPListener, tuple[tuple[bytes, bytes], ...]]] = []
        self._live: set[ConnectionState] = set()
        self._closing = False
        self._shutdown_requested = anyio.Event()
        self._stopped = anyio.Event()
        self._all_closed = anyio.Event()
        self._serving = False
        # Bound once: each connection's serving coroutine keeps them.
        self._run_stream_bound = self._run_stream
        self._connection_ended_bound = self._connection_ended

    # -- public API --------------------------------------------------------------

    @property
    def endpoints(self) -> Sequence[Endpoint]:
        """The endpoints listened on, with the ports the system picked."""
        return tuple(self._endpoints)

    @property
    def connection_count(self) -> int:
        """Connections being served now."""
        return len(self._live)

    async def serve(
        self,
        endpoints: Sequence[str | Endpoint],
        *,
        task_status: TaskStatus[Sequence[Endpoint]] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start, serve until :meth:`shutdown`, then stop gracefully.

        With ``task_group.start(server.serve, endpoints)`` the call returns
        the bound endpoints once the server is ready.

        :param endpoints: where to listen (``http://HOST:PORT``,
            ``https://HOST:PORT``).
        :raises ValueError: for a malformed endpoint, or ``https`` without
            ``tls_config``.
        :raises hcore_io.NetworkError: if an address cannot be bound.
        :raises Exception: what the subclass's startup raised.
        """
        if self._serving:
            raise RuntimeError("the server is already serving")
        self._serving = True
        parsed = [parse_endpoint(e) if isinstance(e, str) else e for e in endpoints]
        if not parsed:
            raise ValueError("give at least one endpoint")
        if any(e.tls for e in parsed) and self._tls_config is None:
            raise ValueError("https endpoints need a tls_config")
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as outer:
                try:
                    await self._startup(outer)
                except Exception as exc:
                    # Raised below, outside the task group's exception group.
                    failure = exc
                    outer.cancel_scope.cancel()
                else:
                    try:
                        await self._serve(parsed, task_status)
                    finally:
                        with anyio.CancelScope(shield=True):
                            await self._cleanup()
                        outer.cancel_scope.cancel()
        finally:
            self._release()
            self._stopped.set()
        if failure is not None:
            raise failure

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Stop gracefully and wait until the server has stopped.

        :param timeout: seconds requests in flight get to finish; the
            server's ``shutdown_timeout`` if omitted.
        """
        if timeout is not None:
            self._shutdown_timeout = timeout
        self._shutdown_requested.set()
        if self._serving:
            await self._stopped.wait()

    # -- what subclasses provide ---------------------------------------------------

    async def _startup(self, task_group: TaskGroup) -> None:
        """Prepare to serve; tasks that live as long as the server go in ``task_group``.

        An exception stops :meth:`serve`, which raises it.
        """

    async def _cleanup(self) -> None:
        """Undo the startup once serving is over (shielded from cancellation)."""

    def _release(self) -> None:
        """Release what the startup made, whether it succeeded or not."""

    async def _going_away(self) -> None:
        """Shutdown began: tell long-lived streams (WebSockets) to end.

        Runs beside the connections' graceful closes, within the grace
        period (``shutdown_timeout``).
        """

    @abstractmethod
    def _context(
        self, connection: HTTPConnection, extra_headers: tuple[tuple[bytes, bytes], ...]
    ) -> _Context:
        """What the streams of a new connection share.

        :param extra_headers: fields every response on the connection
            carries (``Alt-Svc``).
        """
        raise NotImplementedError

    @abstractmethod
    async def _serve_stream(
        self, stream: HTTPStream, request: HeadersReceived, context: _Context
    ) -> None:
        """Answer one request; the stream is the method's to close."""
        raise NotImplementedError

    # -- binding -------------------------------------------------------------------

    async def _serve(
        self, endpoints: Sequence[Endpoint], task_status: TaskStatus[Sequence[Endpoint]]
    ) -> None:
        networking = self._networking
        if networking is None:
            from hcore_io.networking import SystemNetworking

            networking = SystemNetworking(
                tls_handshake_timeout=self.limits.tls_handshake_timeout
            )
        try:
            for endpoint in endpoints:
                port = await self._bind(networking, endpoint)
                self._endpoints.append(Endpoint(endpoint.scheme, endpoint.host, port))
            # The listeners outlive the connections: a QUIC connection's
            # datagrams go through its listener, to its CONNECTION_CLOSE.
            async with anyio.create_task_group() as listening:
                async with anyio.create_task_group() as connections:
                    for listener, extra_headers in self._listeners:
                        listening.start_soon(
                            self._accept, listener, extra_headers, connections
                        )
                    for endpoint in self._endpoints:
                        logger.info("serving on %s", endpoint)
                    task_status.started(self.endpoints)
                    await self._shutdown_requested.wait()
                    await self._drain(connections)
                listening.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_listeners()

    async def _bind(self, networking: ServerNetworking, endpoint: Endpoint) -> int:
        """Listen on an endpoint; return the port bound."""
        port, listeners = await bind_endpoint(
            networking,
            endpoint,
            tcp_factory=self._tcp_factory(),
            tls_config=self._tls_config,
            http3=self._http3,
            limits=self.limits,
        )
        self._listeners.extend(listeners)
        return port

    def _tcp_factory(self) -> HTTPOverTCPFactory | None:
        return make_tcp_factory(
            self._http1_maker,
            self.limits,
            http1=self._http1,
            http2=self._http2,
            extended_connect=self._extended_connect,
        )

    async def _close_listeners(self) -> None:
        for listener, _ in self._listeners:
            await listener.aclose()

    # -- connections -----------------------------------------------------------------

    async def _accept(
        self,
        listener: HTTPListener,
        extra_headers: tuple[tuple[bytes, bytes], ...],
        task_group: TaskGroup,
    ) -> None:
        # A partial, not a closure: no coroutine frame of its own, kept by
        # every connection for as long as it lives.
        await listener.serve(
            functools.partial(self._handle, extra_headers=extra_headers), task_group
        )

    def _handle(
        self,
        connection: HTTPConnection,
        extra_headers: tuple[tuple[bytes, bytes], ...],
    ) -> Awaitable[None]:
        # A plain function returning the serving coroutine: an idle HTTP/1.1
        # connection waits in serve_sequential with no frame of ours above
        # it (memory every open connection holds).  The caller awaits it at
        # once, so its try/finally (on_end) runs whatever happens.
        if len(self._live) >= self._max_connections or self._closing:
            return self._refuse_connection(connection)
        state = ConnectionState(connection)
        self._live.add(state)
        info = self._context(connection, extra_headers)
        if connection.multiplexed:
            return self._serve_multiplexed(state, info)
        return serve_sequential(
            state,
            self._run_stream_bound,
            info,
            request_header_timeout=self._request_header_timeout,
            keep_alive_timeout=self._keep_alive_timeout,
            on_end=self._connection_ended_bound,
        )

    async def _serve_multiplexed(self, state: ConnectionState, info: _Context) -> None:
        # Positional: a partial's keyword arguments make a dict per call.
        run_stream = functools.partial(
            self._run_http3_stream
            if state.connection.http_version == "3"
            else self._run_stream,
            info,
        )
        try:
            await serve_multiplexed(
                state,
                run_stream,
                max_streams=self._max_streams,
                request_header_timeout=self._request_header_timeout,
                keep_alive_timeout=self._keep_alive_timeout,
            )
        finally:
            self._connection_ended(state)

    def _connection_ended(self, state: ConnectionState) -> None:
        self._live.discard(state)
        # (A method call: mypy would keep the narrowing from above.)
        if self._is_closing() and not self._live:
            self._all_closed.set()

    async def _refuse_connection(self, connection: HTTPConnection) -> None:
        reason = "shutting down" if self._closing else "too many connections"
        await refuse_connection(connection, reason)

    async def _run_stream(self, info: _Context, stream: HTTPStream) -> None:
        # HTTP/1.1 and HTTP/2 bound the request head in the protocol.  An
        # accepted stream's head is queued already: taken without a wait
        # (receive_event's own first step, without its coroutine).
        first = stream.receive_event_nowait()
        if first is None:
            try:
                first = await stream.receive_event()
            except HCoreError:
                await stream.aclose()
                return
        if not isinstance(first, HeadersReceived):
            await stream.aclose()
            return
        await self._serve_stream(stream, first, info)

    async def _run_http3_stream(self, info: _Context, stream: HTTPStream) -> None:
        try:
            first = await stream.receive_event()
        except HCoreError:
            await stream.aclose()
            return
        if not isinstance(first, HeadersReceived):
            await stream.aclose()
            return
        if field_section_size(first.headers) > self._max_header_size:
            # HTTP/3's factory has no limit on the field section, so it is
            # applied here (RFC 9114 §4.2.2 lets a server refuse a field
            # section that is too large).
            await answer_too_large(stream)
            return
        await self._serve_stream(stream, first, info)

    def _is_closing(self) -> bool:
        return self._closing

    # -- shutdown ----------------------------------------------------------------------

    async def _drain(self, connections: TaskGroup) -> None:
        self._closing = True
        logger.info("shutting down: %d connections open", len(self._live))
        await self._close_listeners()
        with anyio.move_on_after(self._shutdown_timeout):
            # Concurrently: a graceful close writes, and a peer that reads
            # nothing must not hold up the others' closes.
            async with anyio.create_task_group() as closing:
                closing.start_soon(self._going_away)
                for state in list(self._live):
                    closing.start_soon(state.begin_close)
            if self._live:
                await self._all_closed.wait()
        if self._live:
            logger.warning(
                "cancelling %d connections still busy after %s s",
                len(self._live),
                self._shutdown_timeout,
            )
        connections.cancel_scope.cancel()
