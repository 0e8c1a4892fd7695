"""Client: requests by method and URL, with timeouts, retries and redirects.

A :class:`Client` sends each request through a :class:`ConnectionPool`.
Around the pool it adds:

- default header fields and timeouts, overridable per request;
- retries of connection failures, with exponential backoff and jitter, for
  idempotent requests whose body can be sent again only (RFC 9110 §9.2.2:
  a POST is never retried);
- redirects (RFC 9110 §15.4), up to a limit: 303 (and 301/302 after a POST)
  become a GET without body; 307 and 308 repeat the method and body; the
  ``authorization`` and ``cookie`` fields are dropped when the redirect
  leaves the origin (see ``_redirects``).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Unpack

import anyio

from hcore import ClientTLSConfig, HCoreError
from hcore_io._exceptions import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    ReadError,
    WriteError,
)
from hcore_io._limits import Limits, resolve_limits
from hcore_io.client._models import (
    URL,
    Request,
    RequestBody,
    Response,
    Timeouts,
    cached_url,
)
from hcore_io.client._pool import ConnectionPool
from hcore_io.client._redirects import drain, redirected
from hcore_io.client._sse import EventSource, EventSourceOptions
from hcore_io.client._websocket import WebSocket
from hcore_io.client._websocket_open import connect_websocket, http_url
from hcore_io.networking import ClientNetworking

__all__ = ("Client", "TooManyRedirects")

_RETRYABLE = (ConnectError, ConnectTimeout, ConnectionClosed, ReadError, WriteError)


class TooManyRedirects(HCoreError):
    """A request was redirected more times than the client allows."""


class Client:
    """An HTTP client with a connection pool.

    Use it as an async context manager (or call :meth:`aclose`) so that its
    connections are closed.

    :param pool: the pool to send through; one is made from the other
        arguments if omitted (and closed with the client).
    :param networking: the backend of the pool made.
    :param tls_config: how the pool made verifies servers.
    :param headers: fields added to every request (unless it sets them).
    :param timeouts: default timeouts of each request.
    :param retries: attempts after the first, for connection failures of
        idempotent requests.
    :param backoff_factor: first retry delay in seconds; doubled each time.
    :param max_backoff: longest retry delay.
    :param follow_redirects: follow redirects by default.
    :param max_redirects: redirects followed before :exc:`TooManyRedirects`.
    :param http_versions: see :class:`ConnectionPool`.
    :param http2_prior_knowledge: see :class:`ConnectionPool`.
    :param proxy: an HTTP proxy URL; every request goes through a
        ``CONNECT`` tunnel over TCP.  HTTP/3 is never used through a proxy
        (it would need CONNECT-UDP, RFC 9298, which few proxies speak): as
        curl does, the client then speaks HTTP/2 or HTTP/1.1 through the
        tunnel, even with ``http_versions=("3",)``, and ignores ``Alt-Svc``.
    :param max_connections: see :class:`ConnectionPool`.
    :param max_connections_per_host: see :class:`ConnectionPool`.
    :param keep_alive_timeout: see :class:`ConnectionPool`.
    :param max_requests_per_connection: see :class:`ConnectionPool`.
    :param http1_implementation: see :class:`ConnectionPool`.
    :param limits: the bounds (:class:`~hcore_io.Limits`) of the pool made
        (header size and count, buffered data, response body size) and the
        defaults of :meth:`sse`'s ``max_line_size`` and ``max_event_size``;
        its defaults if omitted.
    :param max_response_body_size: overrides
        ``limits.max_response_body_size`` of the pool made: the largest
        body :meth:`request` and its shorthands read (see
        :exc:`~hcore_io.ResponseBodyTooLarge`).
    """

    def __init__(
        self,
        *,
        pool: ConnectionPool | None = None,
        networking: ClientNetworking | None = None,
        tls_config: ClientTLSConfig | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
        timeouts: Timeouts | None = None,
        retries: int = 2,
        backoff_factor: float = 0.1,
        max_backoff: float = 5.0,
        follow_redirects: bool = True,
        max_redirects: int = 20,
        http_versions: Sequence[str] = ("1.1", "2", "3"),
        http2_prior_knowledge: bool = False,
        proxy: str | None = None,
        max_connections: int = 10,
        max_connections_per_host: int = 5,
        keep_alive_timeout: float = 300.0,
        max_requests_per_connection: int = 100,
        limits: Limits | None = None,
        http1_implementation: str | None = None,
        max_response_body_size: int | None = None,
    ) -> None:
        self._limits = resolve_limits(
            limits, max_response_body_size=max_response_body_size
        )
        self._owns_pool = pool is None
        self._pool = pool or ConnectionPool(
            networking,
            tls_config=tls_config,
            http_versions=http_versions,
            http2_prior_knowledge=http2_prior_knowledge,
            proxy=proxy,
            max_connections=max_connections,
            max_connections_per_host=max_connections_per_host,
            keep_alive_timeout=keep_alive_timeout,
            max_requests_per_connection=max_requests_per_connection,
            limits=self._limits,
            http1_implementation=http1_implementation,
        )
        self._headers = [(name.lower(), value) for name, value in headers]
        self._timeouts = timeouts or Timeouts(connect=10.0, read=30.0, write=30.0)
        self._retries = retries
        self._backoff = backoff_factor
        self._max_backoff = max_backoff
        self._follow = follow_redirects
        self._max_redirects = max_redirects
        #: Retries made over the client's life.
        self.retry_count = 0

    @property
    def pool(self) -> ConnectionPool:
        """The connection pool."""
        return self._pool

    async def aclose(self) -> None:
        """Close the pool, if the client made it."""
        if self._owns_pool:
            await self._pool.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- requests ------------------------------------------------------------

    def build_request(
        self,
        method: str,
        url: str | URL,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        content: RequestBody = b"",
        timeouts: Timeouts | None = None,
    ) -> Request:
        """Make a request with the client's default fields and timeouts.

        :raises ValueError: if ``url`` is not an absolute http(s) URL.
        """
        fields = [(name.lower(), value) for name, value in headers] if headers else []
        if self._headers:
            given = {name for name, _ in fields}
            fields += [(n, v) for n, v in self._headers if n not in given]
        return Request(
            method.upper(),
            url if isinstance(url, URL) else cached_url(url),
            fields,
            content,
            timeouts or self._timeouts,
        )

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        content: RequestBody = b"",
        timeouts: Timeouts | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a request and read its whole response (``response.content``).

        :raises TooManyRedirects: past ``max_redirects``.
        :raises hcore_io.TimeoutError: a timeout passed (its subclass says which).
        :raises hcore_io.NetworkError: the network failed (after the retries).
        """
        request = self.build_request(
            method, url, headers=headers, content=content, timeouts=timeouts
        )
        follow = self._follow if follow_redirects is None else follow_redirects
        response = await self.send(request, follow_redirects=follow)
        try:
            await response.aread()
        finally:
            # Read to its end, the body closed itself: nothing to await.
            if not response.stream._closed:
                await response.aclose()
        return response

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str | URL,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        content: RequestBody = b"",
        timeouts: Timeouts | None = None,
        follow_redirects: bool | None = None,
    ) -> AsyncIterator[Response]:
        """Send a request; yield the response with its body unread.

        The body is read from ``response.stream``; leaving the block closes
        it (and gives the connection back).
        """
        request = self.build_request(
            method, url, headers=headers, content=content, timeouts=timeouts
        )
        follow = self._follow if follow_redirects is None else follow_redirects
        response = await self.send(request, follow_redirects=follow)
        try:
            yield response
        finally:
            await response.aclose()

    async def send(
        self, request: Request, *, follow_redirects: bool = True
    ) -> Response:
        """Send a prepared request; return the response, body unread.

        :raises TooManyRedirects: past ``max_redirects``.
        """
        history: list[Response] = []
        # Bounded by max_redirects.
        for _ in range(self._max_redirects + 1):
            # The first attempt here, without a coroutine of its own.
            try:
                response: Response | None = await self._pool.handle_request(request)
            except _RETRYABLE:
                if not self._retries or not self._retryable(request):
                    raise
                response = None
            if response is None:
                response = await self._retry(request)
            following = redirected(request, response) if follow_redirects else None
            if following is None:
                response.history = history
                return response
            await drain(response)
            history.append(response)
            request = following
        raise TooManyRedirects(
            f"more than {self._max_redirects} redirects from {history[0].url}"
        )

    async def get(
        self,
        url: str | URL,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        timeouts: Timeouts | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a GET and read the response (see :meth:`request`)."""
        return await self.request(
            "GET",
            url,
            headers=headers,
            timeouts=timeouts,
            follow_redirects=follow_redirects,
        )

    async def head(
        self,
        url: str | URL,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        timeouts: Timeouts | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a HEAD and read the response (see :meth:`request`)."""
        return await self.request(
            "HEAD",
            url,
            headers=headers,
            timeouts=timeouts,
            follow_redirects=follow_redirects,
        )

    async def options(
        self,
        url: str | URL,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        timeouts: Timeouts | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a OPTIONS and read the response (see :meth:`request`)."""
        return await self.request(
            "OPTIONS",
            url,
            headers=headers,
            timeouts=timeouts,
            follow_redirects=follow_redirects,
        )

    async def delete(
        self,
        url: str | URL,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        timeouts: Timeouts | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a DELETE and read the response (see :meth:`request`)."""
        return await self.request(
            "DELETE",
            url,
            headers=headers,
            timeouts=timeouts,
            follow_redirects=follow_redirects,
        )

    async def post(
        self,
        url: str | URL,
        *,
        content: RequestBody = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
        timeouts: Timeouts | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a POST with ``content`` and read the response (see :meth:`request`)."""
        return await self.request(
            "POST",
            url,
            headers=headers,
            content=content,
            timeouts=timeouts,
            follow_redirects=follow_redirects,
        )

    async def put(
        self,
        url: str | URL,
        *,
        content: RequestBody = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
        timeouts: Timeouts | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a PUT with ``content`` and read the response (see :meth:`request`)."""
        return await self.request(
            "PUT",
            url,
            headers=headers,
            content=content,
            timeouts=timeouts,
            follow_redirects=follow_redirects,
        )

    async def patch(
        self,
        url: str | URL,
        *,
        content: RequestBody = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
        timeouts: Timeouts | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a PATCH with ``content`` and read the response (see :meth:`request`)."""
        return await self.request(
            "PATCH",
            url,
            headers=headers,
            content=content,
            timeouts=timeouts,
            follow_redirects=follow_redirects,
        )

    def sse(self, url: str | URL, **options: Unpack[EventSourceOptions]) -> EventSource:
        """Open a Server-Sent Events stream that reconnects as browsers do.

        ``async with client.sse(url) as events: async for event in events``
        yields :class:`hcore.sse.ServerSentEvent` s.

        :param url: the stream's URL.
        :param options: see :class:`~hcore_io.client.EventSource` (``headers``,
            ``last_event_id``, ``retry_delay``, ``max_reconnects``, ...);
            ``max_line_size`` and ``max_event_size`` default to the client's
            ``limits``.
        :return: the source; nothing is sent before its first event is asked for.
        :raises ValueError: if ``url`` or an option is out of range.
        """
        options.setdefault("max_line_size", self._limits.sse_max_line_size)
        options.setdefault("max_event_size", self._limits.sse_max_event_size)
        return EventSource(self, url, **options)

    def websocket(
        self,
        url: str,
        *,
        subprotocols: Sequence[str] = (),
        headers: Sequence[tuple[bytes, bytes]] = (),
        http_version: str | None = None,
        timeouts: Timeouts | None = None,
        deflate: bool = True,
        max_message_size: int | None = 1 << 20,
        close_timeout: float = 5.0,
    ) -> AbstractAsyncContextManager[WebSocket]:
        """Open a WebSocket: ``async with client.websocket(url) as ws``.

        It goes over the connection a request to the same origin would use
        (several share one HTTP/2 or HTTP/3 connection); see
        :class:`~hcore_io.client.WebSocket` for what it offers.

        :param url: a ``ws://`` or ``wss://`` (or ``http(s)://``) URL.
        :param subprotocols: subprotocols to offer, preferred first.
        :param headers: more handshake request fields.
        :param http_version: ``"1.1"`` for an HTTP/1.1 Upgrade on a
            connection of its own, ``"2"`` or ``"3"`` to insist on that
            version; by default as any request (HTTP/1.1 when an HTTP/2
            server does not accept extended CONNECT).
        :param timeouts: connect, read (the handshake's response) and write
            timeouts; the client's if omitted.
        :param deflate: offer permessage-deflate (RFC 7692).
        :param max_message_size: largest message received; a larger one
            closes the WebSocket with 1009 (``None``: no limit).
        :param close_timeout: seconds the closing handshake may take.
        :raises ValueError: if ``url`` is not a WebSocket URL.
        """
        request = self.build_request(
            "GET", http_url(url), headers=headers, timeouts=timeouts
        )
        return connect_websocket(
            self._pool,
            request,
            subprotocols=subprotocols,
            http_version=http_version,
            deflate=deflate,
            max_message_size=max_message_size,
            close_timeout=close_timeout,
        )

    # -- retries -----------------------------------------------------------------

    def _retryable(self, request: Request) -> bool:
        return request.idempotent and request.replayable

    async def _retry(self, request: Request) -> Response:
        """Send a request again, its first attempt having failed retryably."""
        # Bounded by self._retries; ``attempt`` is the one that failed.
        for attempt in range(self._retries):
            self.retry_count += 1
            # Exponential backoff with "equal jitter": half fixed, half random.
            delay = min(self._max_backoff, self._backoff * 2**attempt)
            await anyio.sleep(delay / 2 + random.uniform(0, delay / 2))
            try:
                return await self._pool.handle_request(request)
            except _RETRYABLE:
                if attempt == self._retries - 1:
                    raise
        raise AssertionError("unreachable: the last attempt raises")
