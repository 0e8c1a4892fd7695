"""The part of every hcore server that accepts and runs connections.

Theory of operation
-------------------
:meth:`HTTPServer.serve` runs the subclass's startup, binds every endpoint
(an ``https`` endpoint is a TLS listener for HTTP/1.1 and HTTP/2 and a QUIC
listener for HTTP/3 on the same port number) and serves until
:meth:`HTTPServer.shutdown`.  Each accepted connection runs in a task of
its own:

* HTTP/1.1 handles its exchanges one after the other in that task: no task
  per request.  The first request's head must arrive within
  ``request_header_timeout``, each next one within ``keep_alive_timeout``.
* HTTP/2 and HTTP/3 accept streams in that task and run each in a task of
  the connection's task group; more than ``max_concurrent_streams`` at once
  are refused (``REFUSED_STREAM``, safe to retry).  A connection with no
  stream in flight for ``keep_alive_timeout`` is closed (GOAWAY).

Shutdown stops the TCP listeners (a QUIC listener, whose UDP socket its
connections share, stays open and answers new connections with 503 until
the others are done), asks every protocol for a graceful close
(``submit_close``: GOAWAY on HTTP/2 and HTTP/3, ``Connection: close`` on
HTTP/1.1), closes idle connections at once and lets the others finish their
streams within ``shutdown_timeout``; what is still running then is
cancelled.  Finally the subclass's cleanup runs.

What a request stream gets is the subclass's business
(:meth:`HTTPServer._serve_stream`): an ASGI exchange, or a tunnel.
"""

from __future__ import annotations

import logging
import math
from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from hcore import HCoreError, Headers, ServerTLSConfig
from hcore.events import HeadersReceived
from hcore.protocols import HTTPOverTCPFactory, HTTPProtocol
from hcore.protocols.http1 import HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ServerFactory
from hcore_io._exceptions import NetworkError
from hcore_io.connections import (
    DEFAULT_MAX_BUFFERED_DATA,
    HTTPConnection,
    HTTPStream,
    PriorKnowledgeHTTPFactory,
)
from hcore_io.networking import ServerNetworking
from hcore_io.server._endpoints import Endpoint, parse_endpoint
from hcore_io.server._listening import Acceptor, QUICAcceptor, TCPAcceptor

__all__ = ("HTTPServer",)

#: What a subclass keeps per connection and hands to each of its streams.
_Context = TypeVar("_Context")

logger = logging.getLogger("hcore.server")

# Attempts at finding a port free on both TCP and UDP when the system picks.
_PORT_ATTEMPTS = 20
# How long a connection over the limit gets to send the request it is refused.
_BUSY_GRACE = 1.0


def _field_section_size(headers: Headers) -> int:
    # RFC 9114 §4.2.2 (as RFC 9113 §6.5.2): name and value lengths plus 32
    # for each field.
    return sum(len(name) + len(value) + 32 for name, value in headers)


async def _answer_too_large(stream: HTTPStream) -> None:
    body = b"Request Header Fields Too Large\n"
    async with stream:
        try:
            await stream.send_headers(
                (
                    (b":status", b"431"),
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(body)),
                )
            )
            await stream.send_data(body, end_stream=True)
        except (HCoreError, NetworkError):
            pass


class _Connection:
    """The server's bookkeeping of one connection."""

    __slots__ = (
        "accept_scope",
        "active",
        "closing",
        "connection",
        "idle_deadline",
        "protocol",
        "refuses_extra_streams",
    )

    def __init__(self, connection: HTTPConnection, protocol: HTTPProtocol) -> None:
        self.connection = connection
        self.protocol = protocol
        self.active = 0
        self.closing = False
        self.accept_scope: anyio.CancelScope | None = None
        self.idle_deadline = math.inf
        self.refuses_extra_streams = connection.http_version == "3"

    def begin_close(self) -> None:
        """Start a graceful close; an idle connection stops waiting at once."""
        self.closing = True
        try:
            self.protocol.submit_close(self.protocol.error_codes.no_error)
        except HCoreError:
            pass
        self.wake_if_idle()

    def wake_if_idle(self) -> None:
        if self.closing and not self.active and self.accept_scope is not None:
            self.accept_scope.cancel()


class HTTPServer(Generic[_Context], metaclass=ABCMeta):
    """Accepts HTTP/1.1, HTTP/2 and HTTP/3 connections and runs their streams.

    Subclasses say what a request stream gets (:meth:`_serve_stream`), what
    each connection keeps (:meth:`_context`), and may start and stop things
    around serving (:meth:`_startup`, :meth:`_cleanup`).

    :param tls_config: the certificate for ``https`` endpoints.
    :param networking: the backend;
        :class:`~hcore_io.networking.SystemNetworking` if omitted.
    :param http1: serve HTTP/1.1.
    :param http2: serve HTTP/2 (by ALPN over TLS, with prior knowledge on
        plain TCP).
    :param http3: serve HTTP/3 on ``https`` endpoints, advertised with
        ``Alt-Svc``.
    :param max_connections: connections served at once; more get a 503
        and are closed.
    :param max_concurrent_streams: requests in flight per HTTP/2 or HTTP/3
        connection.
    :param max_header_size: largest request head (HTTP/1.1: 431 beyond) or
        header list (HTTP/2: the stream is reset).
    :param keep_alive_timeout: seconds an idle connection is kept.
    :param request_header_timeout: seconds a new connection gets to send its
        first request head (and a plain-TCP one its first bytes).
    :param shutdown_timeout: seconds requests in flight get to finish at
        shutdown.
    :param max_buffered_data: each connection's per-queue bound.
    :raises ValueError: if no HTTP version is enabled or a limit is not positive.
    """

    def __init__(
        self,
        *,
        tls_config: ServerTLSConfig | None = None,
        networking: ServerNetworking | None = None,
        http1: bool = True,
        http2: bool = True,
        http3: bool = True,
        max_connections: int = 1000,
        max_concurrent_streams: int = 100,
        max_header_size: int = 64 * 1024,
        keep_alive_timeout: float = 5.0,
        request_header_timeout: float = 10.0,
        shutdown_timeout: float = 30.0,
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> None:
        if not (http1 or http2 or http3):
            raise ValueError("enable at least one HTTP version")
        for name, value in (
            ("max_connections", max_connections),
            ("max_concurrent_streams", max_concurrent_streams),
            ("max_header_size", max_header_size),
            ("keep_alive_timeout", keep_alive_timeout),
            ("request_header_timeout", request_header_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        if shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must not be negative")
        self._tls_config = tls_config
        self._networking = networking
        self._http1, self._http2, self._http3 = http1, http2, http3
        self._max_connections = max_connections
        self._max_streams = max_concurrent_streams
        self._max_header_size = max_header_size
        self._keep_alive_timeout = keep_alive_timeout
        self._request_header_timeout = request_header_timeout
        self._shutdown_timeout = shutdown_timeout
        self._max_buffered_data = max_buffered_data
        self._endpoints: list[Endpoint] = []
        self._acceptors: list[Acceptor] = []
        self._acceptors_info: list[
            tuple[Acceptor, tuple[tuple[bytes, bytes], ...]]
        ] = []
        self._live: set[_Connection] = set()
        self._closing = False
        self._shutdown_requested = anyio.Event()
        self._stopped = anyio.Event()
        self._all_closed = anyio.Event()
        self._serving = False

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

            networking = SystemNetworking()
        try:
            for endpoint in endpoints:
                port = await self._bind(networking, endpoint)
                self._endpoints.append(Endpoint(endpoint.scheme, endpoint.host, port))
            async with anyio.create_task_group() as connections:
                for acceptor, info in self._acceptors_info:
                    connections.start_soon(self._accept, acceptor, info, connections)
                for endpoint in self._endpoints:
                    logger.info("serving on %s", endpoint)
                task_status.started(self.endpoints)
                await self._shutdown_requested.wait()
                await self._drain(connections)
        finally:
            with anyio.CancelScope(shield=True):
                for acceptor in self._acceptors:
                    await acceptor.aclose()

    async def _bind(self, networking: ServerNetworking, endpoint: Endpoint) -> int:
        """Listen on an endpoint; return the port bound."""
        tcp_factory = self._tcp_factory()
        address = (endpoint.host, endpoint.port)
        if not endpoint.tls:
            if tcp_factory is None:
                raise ValueError(f"{endpoint}: plain http needs HTTP/1.1 or HTTP/2")
            listener = await networking.listen_tcp(address)
            plain = TCPAcceptor(
                listener,
                tcp_factory,
                preface_timeout=self._request_header_timeout,
                max_buffered_data=self._max_buffered_data,
            )
            self._add(plain, ())
            return plain.local_address[1] if plain.local_address else endpoint.port
        tls_config = self._tls_config
        assert tls_config is not None
        # Bounded: a few tries at a port free on both TCP and UDP.
        for attempt in range(_PORT_ATTEMPTS):
            tcp: TCPAcceptor | None = None
            if tcp_factory is not None:
                listener = await networking.listen_tcp_tls(
                    address,
                    tls_config=tls_config,
                    alpn_protocols=tcp_factory.alpn_protocols,
                )
                tcp = TCPAcceptor(
                    listener,
                    tcp_factory,
                    preface_timeout=self._request_header_timeout,
                    max_buffered_data=self._max_buffered_data,
                )
            if not self._http3:
                assert tcp is not None
                self._add(tcp, ())
                return tcp.local_address[1] if tcp.local_address else endpoint.port
            port = endpoint.port
            if tcp is not None and tcp.local_address is not None:
                port = tcp.local_address[1]
            quic_factory = HTTP3ServerFactory()
            try:
                quic_listener = await networking.listen_quic(
                    (endpoint.host, port),
                    quic_connection_id_length=quic_factory.quic_connection_id_length,
                    quic_supported_versions=quic_factory.quic_supported_versions,
                )
            except NetworkError:
                if tcp is not None:
                    await tcp.aclose()
                if endpoint.port or attempt == _PORT_ATTEMPTS - 1:
                    raise
                continue
            quic = QUICAcceptor(
                quic_listener,
                quic_factory,
                tls_config=tls_config,
                max_buffered_data=self._max_buffered_data,
            )
            quic_port = quic.local_address[1] if quic.local_address else port
            alt_svc = ((b"alt-svc", b'h3=":%d"; ma=86400' % quic_port),)
            if tcp is not None:
                self._add(tcp, alt_svc)
            self._add(quic, ())
            return quic_port
        raise AssertionError("unreachable: the last attempt raises")

    def _tcp_factory(self) -> HTTPOverTCPFactory | None:
        http1 = HTTP1ServerFactory(max_header_size=self._max_header_size)
        http2 = HTTP2ServerFactory(
            max_concurrent_streams=self._max_streams,
            max_header_list_size=self._max_header_size,
        )
        if self._http1 and self._http2:
            return PriorKnowledgeHTTPFactory(http1, http2)
        if self._http1:
            return http1
        if self._http2:
            return http2
        return None

    def _add(
        self, acceptor: Acceptor, extra_headers: tuple[tuple[bytes, bytes], ...]
    ) -> None:
        self._acceptors.append(acceptor)
        self._acceptors_info.append((acceptor, extra_headers))

    # -- connections -----------------------------------------------------------------

    async def _accept(
        self,
        acceptor: Acceptor,
        extra_headers: tuple[tuple[bytes, bytes], ...],
        task_group: TaskGroup,
    ) -> None:
        async def handle(connection: HTTPConnection, protocol: HTTPProtocol) -> None:
            await self._handle(connection, protocol, extra_headers)

        await acceptor.serve(handle, task_group)

    async def _handle(
        self,
        connection: HTTPConnection,
        protocol: HTTPProtocol,
        extra_headers: tuple[tuple[bytes, bytes], ...],
    ) -> None:
        if len(self._live) >= self._max_connections or self._closing:
            await self._refuse_connection(connection, protocol)
            return
        state = _Connection(connection, protocol)
        self._live.add(state)
        info = self._context(connection, extra_headers)
        try:
            if connection.multiplexed:
                await self._serve_multiplexed(state, info)
            else:
                await self._serve_sequential(state, info)
        finally:
            self._live.discard(state)
            # (A method call: mypy would keep the narrowing from above.)
            if self._is_closing() and not self._live:
                self._all_closed.set()

    async def _refuse_connection(
        self, connection: HTTPConnection, protocol: HTTPProtocol
    ) -> None:
        logger.warning(
            "refusing a connection from %s: %s",
            connection.remote_address,
            "shutting down" if self._closing else "too many connections",
        )
        body = b"Service Unavailable\n"
        with anyio.move_on_after(_BUSY_GRACE):
            stream = await connection.accept_stream()
            if stream is None:
                return
            try:
                # After the request arrived: HTTP/1.1 then adds
                # "Connection: close" to the answer instead of closing now.
                protocol.submit_close(protocol.error_codes.no_error)
            except HCoreError:
                pass
            async with stream:
                try:
                    await stream.send_headers(
                        (
                            (b":status", b"503"),
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", b"%d" % len(body)),
                            (b"retry-after", b"1"),
                        )
                    )
                    await stream.send_data(body, end_stream=True)
                except (HCoreError, NetworkError):
                    pass

    async def _serve_sequential(self, state: _Connection, info: _Context) -> None:
        connection = state.connection
        timeout = self._request_header_timeout
        # Bounded by the requests the client sends and the timeouts.
        while not state.closing:
            stream: HTTPStream | None = None
            with anyio.CancelScope() as scope:
                state.accept_scope = scope
                scope.deadline = anyio.current_time() + timeout
                stream = await connection.accept_stream()
            state.accept_scope = None
            if stream is None:
                return
            state.active = 1
            try:
                await self._run_stream(stream, info)
            finally:
                state.active = 0
            timeout = self._keep_alive_timeout

    async def _serve_multiplexed(self, state: _Connection, info: _Context) -> None:
        connection = state.connection
        state.idle_deadline = anyio.current_time() + self._request_header_timeout
        async with anyio.create_task_group() as streams:
            # Bounded by the streams the client opens and the timeouts.
            while not state.closing or state.active:
                with anyio.CancelScope() as scope:
                    state.accept_scope = scope
                    if not state.active:
                        scope.deadline = state.idle_deadline
                    stream = await connection.accept_stream()
                state.accept_scope = None
                if scope.cancelled_caught:
                    if state.closing or (
                        not state.active and anyio.current_time() >= state.idle_deadline
                    ):
                        break
                    continue
                if stream is None:
                    break
                # HTTP/2 advertises the limit (SETTINGS_MAX_CONCURRENT_STREAMS)
                # and its protocol refuses streams over it; HTTP/3's is kept
                # here (QUIC's stream credit is aioquic's own, larger one).
                if state.closing or (
                    state.refuses_extra_streams and state.active >= self._max_streams
                ):
                    await self._refuse_stream(stream)
                    continue
                state.active += 1
                streams.start_soon(self._run_counted, state, stream, info)
            if not state.closing:
                # Idle for keep_alive_timeout, or over: GOAWAY and close.
                await connection.aclose()

    async def _refuse_stream(self, stream: HTTPStream) -> None:
        try:
            await stream.send_stream_reset(stream.connection.error_codes.refused_stream)
        except (HCoreError, NetworkError):
            pass
        await stream.aclose()

    async def _run_counted(
        self, state: _Connection, stream: HTTPStream, info: _Context
    ) -> None:
        try:
            await self._run_stream(stream, info)
        finally:
            state.active -= 1
            if not state.active:
                state.idle_deadline = anyio.current_time() + self._keep_alive_timeout
                scope = state.accept_scope
                if scope is not None:
                    scope.deadline = state.idle_deadline
                state.wake_if_idle()

    async def _run_stream(self, stream: HTTPStream, info: _Context) -> None:
        try:
            first = await stream.receive_event()
        except HCoreError:
            await stream.aclose()
            return
        if not isinstance(first, HeadersReceived):
            await stream.aclose()
            return
        if stream.connection.http_version == "3" and (
            _field_section_size(first.headers) > self._max_header_size
        ):
            # HTTP/1.1 and HTTP/2 bound the head in the protocol; HTTP/3's
            # factory has no such limit, so it is applied here (RFC 9114
            # §4.2.2 lets a server refuse a field section that is too large).
            await _answer_too_large(stream)
            return
        await self._serve_stream(stream, first, info)

    def _is_closing(self) -> bool:
        return self._closing

    # -- shutdown ----------------------------------------------------------------------

    async def _drain(self, connections: TaskGroup) -> None:
        self._closing = True
        logger.info("shutting down: %d connections open", len(self._live))
        # A QUIC listener's socket carries its connections too: it stays
        # open (refusing new connections) until they are done.
        for acceptor in self._acceptors:
            if not isinstance(acceptor, QUICAcceptor):
                await acceptor.aclose()
        for state in list(self._live):
            state.begin_close()
        if self._live:
            with anyio.move_on_after(self._shutdown_timeout):
                await self._all_closed.wait()
        if self._live:
            logger.warning(
                "cancelling %d connections still busy after %s s",
                len(self._live),
                self._shutdown_timeout,
            )
        for acceptor in self._acceptors:
            await acceptor.aclose()
        connections.cancel_scope.cancel()
