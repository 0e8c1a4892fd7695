"""ConnectionPool: connections kept per origin and shared by requests.

Theory of operation
-------------------
The books (entries per origin, limits, waiting for a free connection) are
:class:`~hcore_io.client._books.PoolBooks`'; this class chooses the
connections (TCP or QUIC, which versions, ``Alt-Svc``) and runs what goes
over them: a request (:meth:`ConnectionPool.handle_request`, see
``_exchange``: the response's body stream gives the entry back when it ends
or is closed), or a lease (:meth:`ConnectionPool.lease`): a stream the
caller opens itself, as a WebSocket does.

A request that fails on a reused connection before any response byte (the
server closed it meanwhile), or that the server refused unprocessed
(``REFUSED_STREAM``, GOAWAY), is retried once on another connection when its
body can be sent again; a lease whose start function fails so on a reused
connection is retried likewise.  An HTTP/3 connection chosen because of
``Alt-Svc`` that hears nothing from the server within
``quic_connect_timeout`` is abandoned: the alternative is marked broken and
the request (or lease) goes over TCP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar, cast

import anyio

from hcore import ClientTLSConfig
from hcore.protocols import (
    HTTPOverQUICClientFactory,
    HTTPOverTCPFactory,
    default_registry,
)
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore.protocols.http3 import HTTP3ClientFactory
from hcore_io._exceptions import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    ReadError,
    WriteError,
)
from hcore_io._limits import Limits, resolve_limits
from hcore_io.client._altsvc import AltSvcCache
from hcore_io.client._books import PoolBooks
from hcore_io.client._clock import now
from hcore_io.client._entry import PoolEntry
from hcore_io.client._exchange import QUICUnconfirmed, Refused, exchange
from hcore_io.client._factories import ClientTCPFactory
from hcore_io.client._lease import PooledConnection, start_lease
from hcore_io.client._metrics import PoolMetrics
from hcore_io.client._models import URL, Origin, Request, Response, Timeouts
from hcore_io.client._networking import (
    CountingNetworking,
    HappyEyeballsNetworking,
    Resolver,
)
from hcore_io.client._proxy import ProxyNetworking
from hcore_io.client._write_timer import ScopeTimer
from hcore_io.connections import (
    HTTPConnection,
    HTTPOverQUICOpener,
    HTTPOverTCPOpener,
)
from hcore_io.networking import ClientNetworking, SystemNetworking

__all__ = ("ConnectionPool",)

_VERSIONS = ("1.1", "2", "3")
# HTTP/2 receive windows of the pool's connections (RFC 9113 §6.9.2).  The
# protocol's defaults (64 KiB a stream) cost a WINDOW_UPDATE, and so a write,
# every 32 KiB of a download; a client reads what it asked for, so larger
# windows cost little: a stream's window is the bound of its event queue
# (``max_buffered_data``), and the connection's lets this many such run.
_WINDOWS_PER_CONNECTION = 16
# RFC 9113 §6.9.2: the smallest window (the default one).
_MIN_WINDOW = 65_535
# Attempts of one request: a stale-connection retry and an HTTP/3 fallback.
_MAX_ATTEMPTS = 3

T = TypeVar("T")


class ConnectionPool(PoolBooks):
    """Connections to many origins, reused and shared by requests.

    :param networking: the backend; :class:`~hcore_io.networking.SystemNetworking`
        if omitted.
    :param tls_config: how to verify servers.
    :param max_connections: connections open (or opening) at once, in all.
    :param max_connections_per_host: connections open at once per origin.
    :param keep_alive_timeout: seconds an idle connection is kept.
    :param max_requests_per_connection: requests a connection serves
        before it is retired.
    :param http_versions: versions to use: ``"1.1"`` and ``"2"`` over TCP
        (HTTP/2 by ALPN over TLS); ``"3"`` alone means HTTP/3 directly,
        with a TCP version it means HTTP/3 when the origin advertised it
        (``Alt-Svc``, if ``alt_svc``).
    :param http2_prior_knowledge: speak HTTP/2 over plain TCP (h2c).
    :param alt_svc: follow ``Alt-Svc`` advertisements of HTTP/3.
    :param proxy: an HTTP proxy URL; every connection is a ``CONNECT``
        tunnel through it, over TCP.  HTTP/3 is then never used, not even
        when ``http_versions`` is ``("3",)`` or an origin advertises it with
        ``Alt-Svc``: tunnelling QUIC needs CONNECT-UDP (RFC 9298), which
        few proxies support, so the pool does what curl does and speaks
        HTTP/2 (by ALPN) or HTTP/1.1 through the tunnel instead.
    :param proxy_tls_config: how to verify an ``https`` proxy.
    :param proxy_headers: extra fields of the ``CONNECT`` requests.
    :param happy_eyeballs: race a name's IPv6 and IPv4 addresses (RFC 8305).
    :param resolver: name resolver for Happy Eyeballs.
    :param quic_connect_timeout: seconds an HTTP/3 connection from
        ``Alt-Svc`` may stay silent before TCP is used instead.
    :param limits: the bounds (:class:`~hcore_io.Limits`) a client keeps:
        ``max_header_size`` and ``max_header_count`` (a response head over
        them fails the request with a protocol error),
        ``max_buffered_data`` and ``max_response_body_size``; its defaults
        if omitted.
    :param max_buffered_data: overrides ``limits.max_buffered_data``: each
        connection's per-stream buffer bound.
    :param max_response_body_size: overrides
        ``limits.max_response_body_size``: the largest body
        :meth:`Response.aread` buffers (each response's
        ``stream.max_size``); a larger one raises
        :exc:`~hcore_io.ResponseBodyTooLarge`.
    :param http1_implementation: the name of the HTTP/1.1 implementation in
        :data:`hcore.protocols.default_registry` (``"h11"``, the default, or
        e.g. ``"httptools"``); its client factory is made with
        ``max_header_size`` and ``max_header_count``, as hcore's HTTP/1.1
        factories take them.
    :raises ValueError: for an unknown HTTP version or implementation, or a
        bad limit.
    """

    def __init__(
        self,
        networking: ClientNetworking | None = None,
        *,
        tls_config: ClientTLSConfig | None = None,
        max_connections: int = 10,
        max_connections_per_host: int = 5,
        keep_alive_timeout: float = 300.0,
        max_requests_per_connection: int = 100,
        http_versions: Sequence[str] = _VERSIONS,
        http2_prior_knowledge: bool = False,
        alt_svc: bool = True,
        proxy: str | None = None,
        proxy_tls_config: ClientTLSConfig | None = None,
        proxy_headers: Sequence[tuple[bytes, bytes]] = (),
        happy_eyeballs: bool = True,
        resolver: Resolver | None = None,
        quic_connect_timeout: float = 3.0,
        max_buffered_data: int | None = None,
        max_response_body_size: int | None = None,
        limits: Limits | None = None,
        http1_implementation: str | None = None,
    ) -> None:
        limits = resolve_limits(
            limits,
            max_buffered_data=max_buffered_data,
            max_response_body_size=max_response_body_size,
        )
        try:
            self._http1_maker = default_registry.get("1.1", http1_implementation)
        except LookupError as exc:
            raise ValueError(str(exc)) from None
        #: The bounds in force (the keyword arguments applied).
        self.limits = limits
        max_buffered_data = limits.max_buffered_data
        unknown = set(http_versions) - set(_VERSIONS)
        if unknown or not http_versions:
            raise ValueError(f"unknown HTTP versions: {sorted(unknown)}")
        if min(max_connections, max_connections_per_host) < 1:
            raise ValueError("connection limits must be at least 1")
        if max_requests_per_connection < 1:
            raise ValueError("max_requests_per_connection must be at least 1")
        base = networking or SystemNetworking()
        self._udp_networking = base
        if happy_eyeballs:
            base = HappyEyeballsNetworking(base, resolver=resolver)
        self._proxied = proxy is not None
        if proxy is not None:
            base = ProxyNetworking(
                base,
                URL(proxy),
                proxy_tls_config=proxy_tls_config,
                proxy_headers=proxy_headers,
            )
        self._tcp_networking = base
        self._tls_config = tls_config or ClientTLSConfig()
        self._max_buffered = max_buffered_data
        self._quic_timeout = quic_connect_timeout
        # The write timeouts of opening streams (see _write_timer).
        self._write_timer = ScopeTimer()
        tcp_versions = set(http_versions) & {"1.1", "2"}
        if proxy is not None and not tcp_versions:
            # HTTP/3 through an HTTP proxy would need CONNECT-UDP (RFC 9298),
            # which few proxies speak; like curl, go over TCP through the
            # proxy's CONNECT tunnel instead, with HTTP/2 or HTTP/1.1.
            tcp_versions = {"1.1", "2"}
        window = min(max(max_buffered_data, _MIN_WINDOW), 2**31 // 32)
        self._tcp_factory: ClientTCPFactory | None = None
        if tcp_versions:
            self._tcp_factory = ClientTCPFactory(
                self._http1_factory() if "1.1" in tcp_versions else None,
                HTTP2ClientFactory(
                    initial_window_size=window,
                    connection_window_size=window * _WINDOWS_PER_CONNECTION,
                    max_header_list_size=limits.max_header_size,
                )
                if "2" in tcp_versions
                else None,
                prior_knowledge=http2_prior_knowledge,
            )
        self._quic_factory: HTTPOverQUICClientFactory | None = (
            HTTP3ClientFactory() if "3" in http_versions and proxy is None else None
        )
        super().__init__(
            max_connections=max_connections,
            max_connections_per_host=max_connections_per_host,
            keep_alive_timeout=keep_alive_timeout,
            max_requests_per_connection=max_requests_per_connection,
            alt_svc=AltSvcCache()
            if alt_svc and self._quic_factory and self._tcp_factory
            else None,
        )

    def _http1_factory(self) -> HTTPOverTCPFactory:
        make = cast(Callable[..., object], self._http1_maker.client)
        factory = make(
            max_header_size=self.limits.max_header_size,
            max_header_count=self.limits.max_header_count,
        )
        if not isinstance(factory, HTTPOverTCPFactory):
            raise TypeError(f"{factory!r} is not an HTTPOverTCPFactory")
        return factory

    # -- public --------------------------------------------------------------

    @property
    def metrics(self) -> PoolMetrics:
        """A snapshot of the pool's counters and its connections' metrics."""
        return PoolMetrics(
            created=self._created,
            closed=self._closed_count,
            requests=self._requests,
            connections=[entry.metrics for entry in self._entries],
        )

    @property
    def alt_svc(self) -> AltSvcCache | None:
        """The HTTP/3 alternatives learnt, when ``Alt-Svc`` is followed."""
        return self._alt_svc

    async def handle_request(self, request: Request) -> Response:
        """Send a request on a pooled connection and return its response.

        The response's body is read from ``response.stream``; reading it to
        its end (or closing it) gives the connection back, unless it came
        whole with the head: then the connection is back already.

        :raises hcore_io.PoolTimeout: no connection became free in time.
        :raises hcore_io.ConnectError: a connection could not be opened.
        :raises hcore_io.ConnectTimeout: opening one took too long.
        :raises hcore_io.ReadTimeout: the response's head took too long.
        :raises hcore_io.WriteTimeout: sending the request took too long.
        :raises hcore_io.ConnectionClosed: the connection ended meanwhile.
        :raises hcore.HCoreError: the peer broke the protocol or reset the
            stream.
        """
        origin = request.url.origin
        self._check_origin(origin)
        self._requests += 1
        avoid_quic = stale_retried = False
        for attempt in range(_MAX_ATTEMPTS):
            last = attempt == _MAX_ATTEMPTS - 1 or not request.replayable
            entry: PoolEntry | None = None
            try:
                entry = await self._acquire(origin, request.timeouts, avoid_quic)
                return await exchange(self, entry, request)
            except QUICUnconfirmed as exc:
                if entry is not None:
                    await self._discard(entry, broken_alternative=exc.via_alt_svc)
                if not exc.via_alt_svc or last:
                    raise ConnectTimeout(str(exc)) from exc
                # RFC 7838 §2.4: fall back to the origin over TCP.
                avoid_quic = True
            except Refused as exc:
                if last:
                    raise exc.error from exc
            except (ConnectionClosed, ReadError, WriteError):
                # RFC 9112 §9.3.1: an idempotent request on a reused
                # connection that the server closed may be retried if
                # nothing came back (a POST may have been applied: never);
                # once, on a new connection: the other idle ones of the
                # origin are likely stale too (a server restart) and go.
                if (
                    entry is None
                    or entry.served == 0
                    or last
                    or stale_retried
                    or not request.idempotent
                ):
                    raise
                stale_retried = True
                await self._drop_idle(entry.origin)
        raise AssertionError("unreachable: the last attempt raises")

    def lease(
        self,
        url: URL | str,
        start: Callable[[PooledConnection], Awaitable[T]],
        *,
        timeouts: Timeouts | None = None,
        http1_only: bool = False,
    ) -> AbstractAsyncContextManager[tuple[PooledConnection, T]]:
        """Lease a connection to ``url``'s origin for a stream of your own.

        ``async with pool.lease(url, start) as (leased, result)``: the pool
        takes a connection as a request would (its limits, versions,
        ``Alt-Svc`` and reuse; an HTTP/2 or HTTP/3 one is shared) and awaits
        ``start(leased)``, which opens a stream on ``leased.connection``,
        its head built for ``leased.http_version``, and returns what the
        block gets as ``result``.  If ``start`` fails on a reused connection
        with :exc:`~hcore_io.ConnectionClosed`, :exc:`~hcore_io.ReadError` or
        :exc:`~hcore_io.WriteError` (a stale connection), it is called once
        more on a new one; if a new HTTP/3 connection from ``Alt-Svc``
        stays silent, once more over TCP.  So ``start`` must be safe to
        call again, and should close its stream if it fails.

        The lease counts as a request in :attr:`metrics` and holds its
        connection (an HTTP/1.1 one whole, a stream slot of the others)
        until the block ends; it counts as failed if ``start`` or the
        block raised, or :meth:`PooledConnection.fail` was called.  The
        caller ends its stream before leaving the block.

        :param url: where to (its origin is what counts).
        :param start: opens the stream; its result is handed over.
        :param timeouts: the pool and connect timeouts apply (a default
            :class:`Timeouts` if omitted: none).
        :param http1_only: take an HTTP/1.1 connection: an idle one of the
            pool, or a new one offering HTTP/1.1 alone.
        :raises hcore_io.PoolTimeout: no connection became free in time.
        :raises hcore_io.ConnectError: a connection could not be opened.
        :raises hcore_io.ConnectTimeout: opening one took too long.
        :raises hcore_io.ConnectionClosed: the pool is closed.
        """
        if isinstance(url, str):
            url = URL(url)
        return self._lease(url.origin, start, timeouts or Timeouts(), http1_only)

    @asynccontextmanager
    async def _lease(
        self,
        origin: Origin,
        start: Callable[[PooledConnection], Awaitable[T]],
        timeouts: Timeouts,
        http1_only: bool,
    ) -> AsyncIterator[tuple[PooledConnection, T]]:
        if not http1_only:
            self._check_origin(origin)
        self._requests += 1
        leased, started, result = await start_lease(
            self, origin, start, timeouts, http1_only, self._quic_timeout
        )
        try:
            yield leased, result
        except BaseException:
            leased.fail()
            raise
        finally:
            with anyio.CancelScope(shield=True):
                entry = leased._entry
                if leased.retired:
                    await self._discard(entry, broken_alternative=False)
                await self.release(entry, started, failed=leased.failed)

    async def aclose(self) -> None:
        """Close every connection; requests after this fail."""
        self._closed = True
        entries, self._entries = self._entries, []
        self._abandoned.clear()
        self._notify()
        with anyio.CancelScope(shield=True):
            for entry in entries:
                await self._close_connection(entry)

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- used by the exchange --------------------------------------------------

    def learn_alt_svc(self, entry: PoolEntry, value: bytes) -> None:
        """Remember an ``Alt-Svc`` field of a response that came over TCP."""
        if self._alt_svc is not None and not entry.quic:
            if entry.origin.scheme == "https":
                self._alt_svc.update(entry.origin, value.decode("latin-1"), now())

    @property
    def quic_connect_timeout(self) -> float:
        """Seconds an Alt-Svc HTTP/3 connection may stay silent."""
        return self._quic_timeout

    # -- the connections chosen ------------------------------------------------

    def _check_origin(self, origin: Origin) -> None:
        if origin.scheme == "http" and self._tcp_factory is None:
            raise ConnectError("HTTP/3 needs https; plain http needs HTTP/1.1 or 2")

    def _new_entry(
        self, origin: Origin, now: float, avoid_quic: bool, http1_only: bool
    ) -> PoolEntry:
        if http1_only:
            return PoolEntry(
                origin,
                quic=False,
                port=origin.port,
                via_alt_svc=False,
                may_multiplex=False,
                now=now,
                http1_only=True,
            )
        quic, port, via_alt_svc = False, origin.port, False
        if self._quic_factory is not None and origin.scheme == "https":
            if self._tcp_factory is None:
                quic = True
            elif self._alt_svc is not None and not avoid_quic:
                alternative = self._alt_svc.lookup(origin, now)
                if alternative is not None:
                    quic, port, via_alt_svc = True, alternative, True
        tcp = self._tcp_factory
        may_multiplex = quic or (
            tcp is not None
            and (
                tcp.may_multiplex if origin.scheme == "https" else tcp.plain_is_http2()
            )
        )
        return PoolEntry(
            origin,
            quic=quic,
            port=port,
            via_alt_svc=via_alt_svc,
            may_multiplex=may_multiplex,
            now=now,
        )

    async def _open(self, entry: PoolEntry) -> HTTPConnection:
        origin = entry.origin
        if entry.quic:
            assert self._quic_factory is not None
            networking = CountingNetworking(
                self._udp_networking, entry.metrics, entry.received
            )
            quic_opener = HTTPOverQUICOpener(
                self._quic_factory,
                networking=networking,
                tls_config=self._tls_config,
                max_buffered_data=self._max_buffered,
            )
            return await quic_opener((origin.host, entry.port), server_name=origin.host)
        factory: HTTPOverTCPFactory | None = self._tcp_factory
        if entry.http1_only:
            factory = ClientTCPFactory(self._http1_factory(), None)
        assert factory is not None
        networking = CountingNetworking(
            self._tcp_networking, entry.metrics, entry.received
        )
        opener = HTTPOverTCPOpener(
            factory,
            networking=networking,
            tls_config=self._tls_config,
            max_buffered_data=self._max_buffered,
        )
        connection = await opener(
            (origin.host, origin.port),
            tls=origin.scheme == "https",
            server_name=origin.host,
        )
        entry.reports_unsent = networking.reports_unsent
        return connection
