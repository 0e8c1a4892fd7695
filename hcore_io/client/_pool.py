"""ConnectionPool: connections kept per origin and shared by requests.

Theory of operation
-------------------
The pool's books (its entries, one per connection, and the counters) are
changed only under one AnyIO lock, and nothing is awaited while it is held
but the lock itself.  Network work (connecting, closing, requests) happens
outside it, and every change a waiting task may care about (a connection
freed, opened, failed or closed; a stream slot freed) sets the ``_changed``
event, which is then replaced.

A request *acquires* an entry: under the lock it sweeps out idle
connections that expired (keep-alive timeout, ``Connection: close``,
GOAWAY, request budget spent, or an HTTP/1.1 socket that became readable
while idle: the server closed it), then takes

* an idle HTTP/1.1 connection of its origin;
* an HTTP/2 or HTTP/3 connection of its origin whose ``is_available()``
  says the server's stream limit is not reached.  Stream openings on one
  connection are serialized (``opening``) so that ``is_available()`` is
  read after the previous request took its slot;
* else, if a connection of the origin that may turn out multiplexed is
  being opened, it waits for it;
* else it reserves a new entry if the limits allow (closing an idle
  connection of another origin to make room), and opens it outside the lock;
* else it waits for a change, within the pool timeout (:exc:`PoolTimeout`).

The request then runs on the entry (see ``_exchange``); the response's body
stream gives the entry back when it ends or is closed.

A request that fails on a reused connection before any response byte (the
server closed it meanwhile), or that the server refused unprocessed
(``REFUSED_STREAM``, GOAWAY), is retried once on another connection when its
body can be sent again.  An HTTP/3 connection chosen because of ``Alt-Svc``
that hears nothing from the server within ``quic_connect_timeout`` is
abandoned: the alternative is marked broken and the request goes over TCP.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from hcore import ClientTLSConfig, HCoreError
from hcore.protocols import HTTPOverQUICClientFactory, HTTPOverTCPFactory
from hcore.protocols.http1 import HTTP1ClientFactory
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore.protocols.http3 import HTTP3ClientFactory
from hcore_io._exceptions import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    PoolTimeout,
    ReadError,
    WriteError,
)
from hcore_io.client._altsvc import AltSvcCache
from hcore_io.client._entry import PoolEntry, looks_closed
from hcore_io.client._exchange import QUICUnconfirmed, Refused, exchange
from hcore_io.client._factories import ClientTCPFactory
from hcore_io.client._metrics import ConnectionState, PoolMetrics
from hcore_io.client._models import URL, Origin, Request, Response
from hcore_io.client._networking import (
    CountingNetworking,
    HappyEyeballsNetworking,
    Resolver,
)
from hcore_io.client._proxy import ProxyNetworking
from hcore_io.connections import (
    DEFAULT_MAX_BUFFERED_DATA,
    HTTPConnection,
    HTTPOverQUICOpener,
    HTTPOverTCPOpener,
)
from hcore_io.networking import ClientNetworking, SystemNetworking

__all__ = ("ConnectionPool",)

_VERSIONS = ("1.1", "2", "3")
# Attempts of one request: a stale-connection retry and an HTTP/3 fallback.
_MAX_ATTEMPTS = 3


class ConnectionPool:
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
    :param proxy: an HTTP proxy URL; every TCP connection is a ``CONNECT``
        tunnel through it (HTTP/3 is then not used).
    :param proxy_tls_config: how to verify an ``https`` proxy.
    :param proxy_headers: extra fields of the ``CONNECT`` requests.
    :param happy_eyeballs: race a name's IPv6 and IPv4 addresses (RFC 8305).
    :param resolver: name resolver for Happy Eyeballs.
    :param quic_connect_timeout: seconds an HTTP/3 connection from
        ``Alt-Svc`` may stay silent before TCP is used instead.
    :param max_buffered_data: each connection's per-stream buffer bound.
    :raises ValueError: for an unknown HTTP version or a bad limit.
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
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> None:
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
        self._max_connections = max_connections
        self._max_per_host = max_connections_per_host
        self._keep_alive = keep_alive_timeout
        self._max_requests = max_requests_per_connection
        self._max_buffered = max_buffered_data
        self._quic_timeout = quic_connect_timeout
        self._tcp_factory: ClientTCPFactory | None = None
        if "1.1" in http_versions or "2" in http_versions:
            self._tcp_factory = ClientTCPFactory(
                HTTP1ClientFactory() if "1.1" in http_versions else None,
                HTTP2ClientFactory() if "2" in http_versions else None,
                prior_knowledge=http2_prior_knowledge,
            )
        self._quic_factory: HTTPOverQUICClientFactory | None = (
            HTTP3ClientFactory() if "3" in http_versions and proxy is None else None
        )
        self._alt_svc = (
            AltSvcCache()
            if alt_svc and self._quic_factory and self._tcp_factory
            else None
        )
        self._lock = anyio.Lock()
        self._changed = anyio.Event()
        self._entries: list[PoolEntry] = []
        self._created = 0
        self._closed_count = 0
        self._requests = 0
        self._closed = False

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
        its end (or closing it) gives the connection back.

        :raises hcore_io.PoolTimeout: no connection became free in time.
        :raises hcore_io.ConnectError: a connection could not be opened.
        :raises hcore_io.ConnectTimeout: opening one took too long.
        :raises hcore_io.ReadTimeout: the response's head took too long.
        :raises hcore_io.WriteTimeout: sending the request took too long.
        :raises hcore_io.ConnectionClosed: the connection ended meanwhile.
        :raises hcore.HCoreError: the peer broke the protocol or reset the
            stream.
        """
        self._requests += 1
        avoid_quic = stale_retried = False
        for attempt in range(_MAX_ATTEMPTS):
            last = attempt == _MAX_ATTEMPTS - 1 or not request.replayable
            entry: PoolEntry | None = None
            try:
                entry = await self._acquire(request, avoid_quic)
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
                # RFC 9112 §9.3.1: a request on a reused connection that
                # the server closed may be retried if nothing came back;
                # once, on a new connection: the other idle ones of the
                # origin are likely stale too (a server restart) and go.
                if entry is None or entry.served == 0 or last or stale_retried:
                    raise
                stale_retried = True
                await self._drop_idle(entry.origin)
        raise AssertionError("unreachable: the last attempt raises")

    async def _drop_idle(self, origin: Origin) -> None:
        """Close the idle HTTP/1.1 connections of an origin."""
        async with self._lock:
            idle = [
                entry
                for entry in self._entries
                if entry.origin == origin
                and not entry.active
                and entry.connection is not None
                and not entry.connection.multiplexed
            ]
            for entry in idle:
                self._entries.remove(entry)
            self._notify()
        for entry in idle:
            await self._close_connection(entry)

    async def aclose(self) -> None:
        """Close every connection; requests after this fail."""
        async with self._lock:
            self._closed = True
            entries, self._entries = self._entries, []
            self._notify()
        with anyio.CancelScope(shield=True):
            for entry in entries:
                await self._close_connection(entry)

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- used by the exchange --------------------------------------------------

    def opened_stream(self, entry: PoolEntry) -> None:
        """An exchange got its stream (or failed to): the next may open one."""
        entry.opening -= 1
        self._notify()

    def learn_alt_svc(self, entry: PoolEntry, value: bytes) -> None:
        """Remember an ``Alt-Svc`` field of a response that came over TCP."""
        if self._alt_svc is not None and not entry.quic:
            if entry.origin.scheme == "https":
                self._alt_svc.update(
                    entry.origin, value.decode("latin-1"), anyio.current_time()
                )

    async def release(self, entry: PoolEntry, started: float, failed: bool) -> None:
        """An exchange ended: book it and close the connection if it is spent."""
        now = anyio.current_time()
        metrics = entry.metrics
        metrics.completed += 1
        metrics.total_request_time += now - started
        if failed:
            metrics.errors += 1
        else:
            entry.served += 1
        to_close: list[PoolEntry] = []
        async with self._lock:
            entry.active -= 1
            if entry.active == 0:
                entry.idle_since = now
                if metrics.state is not ConnectionState.CLOSED:
                    metrics.state = ConnectionState.IDLE
                if self._expired(entry, now) and entry in self._entries:
                    self._entries.remove(entry)
                    to_close.append(entry)
            self._notify()
        for spent in to_close:
            await self._close_connection(spent)

    @property
    def quic_connect_timeout(self) -> float:
        """Seconds an Alt-Svc HTTP/3 connection may stay silent."""
        return self._quic_timeout

    # -- acquiring -------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _expired(self, entry: PoolEntry, now: float) -> bool:
        connection = entry.connection
        if connection is None:
            return False
        if connection.has_expired() or entry.metrics.requests >= self._max_requests:
            return True
        if now - entry.idle_since > self._keep_alive:
            return True
        if not connection.multiplexed:
            return not connection.is_available() or looks_closed(connection)
        return False

    def _pick(
        self, origin: Origin, now: float, avoid_quic: bool
    ) -> tuple[PoolEntry | None, bool]:
        """Find a usable entry; also say whether one may soon become usable."""
        wait = False
        # RFC 7838 §2: while an alternative is known, new requests use it.
        prefer_quic = (
            not avoid_quic
            and self._alt_svc is not None
            and self._alt_svc.lookup(origin, now) is not None
        )
        for entry in self._entries:
            if entry.origin != origin or (avoid_quic and entry.quic):
                continue
            if self._alt_svc is not None and entry.quic is not prefer_quic:
                continue
            connection = entry.connection
            if connection is None:
                wait = wait or entry.may_multiplex
                continue
            if connection.has_expired() or entry.metrics.requests >= self._max_requests:
                continue
            if connection.multiplexed:
                if connection.is_available():
                    if not entry.opening:
                        return entry, False
                    wait = True
                elif not entry.received.is_set():
                    # The limit assumed before the server's SETTINGS (RFC
                    # 9113 §6.5.2: 100 by h2's default) may be raised by them.
                    wait = True
            elif entry.active == 0 and connection.is_available():
                return entry, False
        return None, wait

    def _make_room(self, origin: Origin) -> tuple[bool, list[PoolEntry]]:
        """Whether a new connection to ``origin`` fits; evict an idle one if need be."""
        if sum(entry.origin == origin for entry in self._entries) >= self._max_per_host:
            return False, []
        if len(self._entries) < self._max_connections:
            return True, []
        for entry in self._entries:
            if entry.active == 0 and entry.connection is not None:
                self._entries.remove(entry)
                return True, [entry]
        return False, []

    def _new_entry(self, origin: Origin, now: float, avoid_quic: bool) -> PoolEntry:
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

    async def _acquire(self, request: Request, avoid_quic: bool) -> PoolEntry:
        origin = request.url.origin
        if origin.scheme == "http" and self._tcp_factory is None:
            raise ConnectError("HTTP/3 needs https; plain http needs HTTP/1.1 or 2")
        timeout = request.timeouts.pool
        deadline = None if timeout is None else anyio.current_time() + timeout
        # Bounded: each turn either returns or waits for the pool to change,
        # and the deadline (if any) ends the waiting.
        while True:
            new = False
            async with self._lock:
                if self._closed:
                    raise ConnectionClosed("the pool is closed")
                now = anyio.current_time()
                to_close = [e for e in self._entries if not e.active]
                to_close = [e for e in to_close if self._expired(e, now)]
                for spent in to_close:
                    self._entries.remove(spent)
                entry, wait = self._pick(origin, now, avoid_quic)
                if entry is None and not wait:
                    room, evicted = self._make_room(origin)
                    to_close += evicted
                    if room:
                        entry = self._new_entry(origin, now, avoid_quic)
                        self._entries.append(entry)
                        new = True
                if entry is not None:
                    entry.active += 1
                    entry.opening += 1
                    entry.metrics.state = (
                        ConnectionState.CONNECTING if new else ConnectionState.ACTIVE
                    )
                changed = self._changed
                if to_close:
                    self._notify()
            for spent in to_close:
                await self._close_connection(spent)
            if entry is not None:
                if new:
                    await self._connect(entry, request.timeouts.connect)
                return entry
            remaining = None if deadline is None else deadline - anyio.current_time()
            if remaining is not None and remaining <= 0:
                raise PoolTimeout(f"no connection to {origin} became free in time")
            with anyio.move_on_after(remaining):
                await changed.wait()

    # -- opening and closing ---------------------------------------------------

    async def _connect(self, entry: PoolEntry, timeout: float | None) -> None:  # noqa: ASYNC109
        origin = entry.origin
        try:
            try:
                with anyio.fail_after(timeout):
                    connection = await self._open(entry)
            except TimeoutError as exc:
                if isinstance(exc, ConnectTimeout):
                    raise
                raise ConnectTimeout(f"connecting to {origin} timed out") from exc
        except BaseException as exc:
            async with self._lock:
                if entry in self._entries:
                    self._entries.remove(entry)
                entry.metrics.state = ConnectionState.CLOSED
                entry.connected.set()
                self._notify()
            if entry.via_alt_svc and isinstance(exc, ConnectError | ConnectTimeout):
                if self._alt_svc is not None:
                    self._alt_svc.mark_broken(origin, anyio.current_time())
                raise QUICUnconfirmed(
                    f"HTTP/3 to {origin} failed: {exc}", via_alt_svc=True
                ) from exc
            raise
        async with self._lock:
            entry.connection = connection
            entry.metrics.http_version = connection.http_version
            entry.metrics.state = ConnectionState.ACTIVE
            self._created += 1
            entry.connected.set()
            self._notify()
            closed = entry not in self._entries
        if closed:
            # The pool was closed while this connection was being opened.
            await connection.aclose()
            raise ConnectionClosed("the pool is closed")

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
        assert self._tcp_factory is not None
        factory: HTTPOverTCPFactory = self._tcp_factory
        networking = CountingNetworking(
            self._tcp_networking, entry.metrics, entry.received
        )
        opener = HTTPOverTCPOpener(
            factory,
            networking=networking,
            tls_config=self._tls_config,
            max_buffered_data=self._max_buffered,
        )
        return await opener(
            (origin.host, origin.port),
            tls=origin.scheme == "https",
            server_name=origin.host,
        )

    async def _discard(self, entry: PoolEntry, *, broken_alternative: bool) -> None:
        """Drop an entry whose connection failed."""
        if broken_alternative and entry.via_alt_svc and self._alt_svc is not None:
            self._alt_svc.mark_broken(entry.origin, anyio.current_time())
        async with self._lock:
            if entry in self._entries:
                self._entries.remove(entry)
            self._notify()
        await self._close_connection(entry)

    async def _close_connection(self, entry: PoolEntry) -> None:
        if entry.metrics.state is ConnectionState.CLOSED:
            return
        entry.metrics.state = ConnectionState.CLOSED
        connection = entry.connection
        if connection is not None:
            self._closed_count += 1
            with anyio.CancelScope(shield=True):
                try:
                    await connection.aclose()
                except HCoreError:
                    pass
