"""Requests, responses and URLs: what a client sends and gets back.

A :class:`Request` holds a method, a :class:`URL`, header fields and a body
that is either ``bytes`` or an async iterable of ``bytes`` (sent piece by
piece, each piece waiting for the peer's flow control: backpressure).  A
:class:`Response` arrives once its header block did; its body is read
through :attr:`Response.stream`, which hands the connection back to the pool
when the body ends or the stream is closed (at once, for a body that came
whole with its head).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NoReturn
from urllib.parse import urljoin, urlsplit

from hcore import Headers, LocalProtocolError
from hcore_io._exceptions import ResponseBodyTooLarge

__all__ = (
    "URL",
    "Origin",
    "Request",
    "RequestBody",
    "Response",
    "ResponseStream",
    "Timeouts",
)

# RFC 9110 §9.2.2.
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: A request body: all of it at once, or pieces as they come.
RequestBody = bytes | AsyncIterable[bytes]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """Where requests go: scheme, host and port (RFC 6454 §4)."""

    #: ``"http"`` or ``"https"``.
    scheme: str
    #: Host name or IP address (IPv6 without brackets).
    host: str
    #: TCP (or UDP, for HTTP/3) port.
    port: int

    @property
    def authority(self) -> str:
        """``host[:port]`` as it goes in ``:authority``; the default port omitted."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if _DEFAULT_PORTS.get(self.scheme) == self.port:
            return host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}"


@lru_cache(maxsize=256)
def _split(raw: str) -> tuple[Origin, str]:
    """Parse a URL into its origin and target (cached: clients repeat URLs).

    :raises ValueError: if it is not an absolute ``http``/``https`` URL.
    """
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"not an http or https URL: {raw!r}")
    if not parts.hostname:
        raise ValueError(f"URL has no host: {raw!r}")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"invalid port in {raw!r}") from exc
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Origin(scheme, parts.hostname, port), target


@dataclass(frozen=True)
class URL:
    """An absolute ``http`` or ``https`` URL, split into what a request needs.

    :param raw: the URL text.
    :raises ValueError: if it is not an absolute ``http``/``https`` URL.
    """

    raw: str
    #: The origin requests to this URL go to.
    origin: Origin = field(init=False)
    #: Path and query, as sent in ``:path`` (``/`` when empty).
    target: str = field(init=False)

    def __post_init__(self) -> None:
        origin, target = _split(self.raw)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "target", target)

    @property
    def scheme(self) -> str:
        """``"http"`` or ``"https"``."""
        return self.origin.scheme

    @property
    def host(self) -> str:
        """The host name or address."""
        return self.origin.host

    @property
    def port(self) -> int:
        """The port, explicit or the scheme's default."""
        return self.origin.port

    def join(self, reference: str) -> URL:
        """Resolve a (possibly relative) reference against this URL (RFC 3986 §5).

        :raises ValueError: if the result is not an http or https URL.
        """
        return URL(urljoin(self.raw, reference))

    def __str__(self) -> str:
        return self.raw


@lru_cache(maxsize=256)
def cached_url(raw: str) -> URL:
    """``URL(raw)``, shared between requests that repeat a URL (it is immutable).

    :raises ValueError: if it is not an absolute ``http``/``https`` URL.
    """
    return URL(raw)


@lru_cache(maxsize=256)
def _pseudo_headers(method: str, url: str) -> tuple[tuple[bytes, bytes], ...]:
    """The pseudo-header fields of a request (cached: clients repeat requests).

    Keyed by the URL's text, whose hash ``str`` keeps, and which says all
    (:class:`URL` is made from it alone).
    """
    origin, target = _split(url)
    return (
        (b":method", method.encode("ascii")),
        (b":scheme", origin.scheme.encode("ascii")),
        (b":authority", origin.authority.encode("idna")),
        (b":path", target.encode("ascii")),
    )


@dataclass(frozen=True)
class Timeouts:
    """Seconds each phase of a request may take; ``None`` waits forever."""

    #: Opening a connection (TCP, TLS, QUIC handshake, proxy tunnel).
    connect: float | None = None
    #: Waiting for each piece of the response.
    read: float | None = None
    #: Each write of the request, credit waits included.
    write: float | None = None
    #: Waiting for a pool connection to become free.
    pool: float | None = None


@dataclass
class Request:
    """An HTTP request.

    :param method: the method, e.g. ``"GET"``.
    :param url: where to send it.
    :param headers: header fields (lower-case names, no pseudo-headers).
    :param body: the body: ``bytes``, or an async iterable of ``bytes``
        streamed with backpressure.
    :param timeouts: the timeouts of this request.
    """

    method: str
    url: URL
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: RequestBody = b""
    timeouts: Timeouts = field(default_factory=Timeouts)

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent again (it is ``bytes``)."""
        return isinstance(self.body, bytes)

    @property
    def idempotent(self) -> bool:
        """Whether the method is idempotent (RFC 9110 §9.2.2), so that a
        request that may have reached the server can be sent again."""
        return self.method in _IDEMPOTENT_METHODS

    def header_block(self) -> Headers:
        """The header block to send: pseudo-headers first, then the fields.

        A ``bytes`` body gets a ``content-length`` unless one was given.

        :raises hcore.LocalProtocolError: if a field name is not lower case.
        """
        pseudo = _pseudo_headers(self.method, self.url.raw)
        body = self.body
        needs_length = isinstance(body, bytes) and (
            bool(body) or self.method not in ("GET", "HEAD", "OPTIONS")
        )
        if not self.headers and not needs_length:
            # The common GET: the cached pseudo-headers are the whole block.
            return pseudo
        block = list(pseudo)
        names = set()
        for name, value in self.headers:
            if name != name.lower() or name.startswith(b":"):
                raise LocalProtocolError(f"invalid header name {name!r}")
            if name == b"host":
                continue
            names.add(name)
            block.append((name, value))
        if needs_length and b"content-length" not in names:
            assert isinstance(body, bytes)
            block.append((b"content-length", str(len(body)).encode()))
        return tuple(block)


def body_length(
    request: Request, status: int, headers: list[tuple[bytes, bytes]]
) -> int | None:
    """The length of the body a response announced, or ``None``.

    RFC 9110 §8.6: the ``content-length`` of a response to HEAD, of a 1xx,
    204 or 304, or of a 2xx to CONNECT does not describe a body that
    follows: ``None`` then, as for a response without the field or with a
    value that is not a number (the protocol layer rejects a wrong one).
    """
    if (
        request.method == "HEAD"
        or status < 200
        or status in (204, 304)
        or (request.method == "CONNECT" and 200 <= status < 300)
    ):
        return None
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class ResponseStream:
    """The body of a response, read piece by piece.

    ``async for chunk in stream`` gives the pieces as they arrive; each read
    returns flow-control credit, so a slow reader slows the sender instead of
    filling memory.  :meth:`aread` reads the rest at once, up to
    :attr:`max_size` bytes.  When the body ends (or on :meth:`aclose`) the
    connection goes back to its pool (a body that came whole with its head,
    see :meth:`whole`, gave it back already).

    :param receive: returns the next piece, or ``None`` at the end.
    :param close: releases the exchange (resets it if unfinished);
        ``None``: nothing to release.
    :param max_size: the most bytes :meth:`aread` buffers; ``None``: no bound.
    :param content_length: the body's announced length, if any.
    :param fail: called before :meth:`aread` gives up on a body too large,
        so that the exchange is booked as failed.
    :param abandoned: called if the stream is garbage-collected neither
        read to its end nor closed (a pool takes its connection back then).
    """

    def __init__(
        self,
        receive: Callable[[], Awaitable[bytes | None]],
        close: Callable[[], Awaitable[None]] | None,
        *,
        max_size: int | None = None,
        content_length: int | None = None,
        fail: Callable[[], None] | None = None,
        abandoned: Callable[[], None] | None = None,
    ) -> None:
        self._receive = receive
        self._close = close
        self._fail = fail
        self._abandoned = abandoned
        self._done = False
        self._closed = False
        #: The whole rest of the body, when the exchange that made the
        #: stream has it queued already (``receive`` returns ``None`` after
        #: them): :meth:`aread` joins them at once, :meth:`read_chunk` takes
        #: them one by one without calling ``receive``.
        self._buffered: deque[bytes] | None = None
        self._too_large: ResponseBodyTooLarge | None = None
        #: Body bytes read so far.
        self.bytes_read = 0
        #: The most bytes :meth:`aread` buffers (the pool's
        #: ``max_response_body_size``); ``None``: no bound.  Set it before
        #: reading to take in a body known to be larger.
        self.max_size = max_size
        #: The body's length announced by ``content-length``, or ``None``
        #: (no such field, or a response that has no body, as one to HEAD).
        self.content_length = content_length

    @classmethod
    def whole(
        cls,
        pieces: deque[bytes],
        *,
        max_size: int | None = None,
        content_length: int | None = None,
    ) -> ResponseStream:
        """A body that arrived whole, read from memory.

        Its exchange is over already (its connection is back in the pool):
        reading or closing it waits for nothing and releases nothing.

        :param pieces: the body's pieces, in order (taken, not copied).
        """
        # (Set after: a class called with keywords builds a dict for them.)
        stream = cls(_end_of_body, None)
        stream.max_size = max_size
        stream.content_length = content_length
        stream._buffered = pieces
        return stream

    def __del__(self) -> None:
        # A finalizer without a weakref.finalize per response (which cost
        # more than its call): nothing to do for a stream read or closed,
        # nor while the interpreter shuts down.
        if not self._closed and self._abandoned is not None and not sys.is_finalizing():
            self._abandoned()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        # Bounded by the response body.
        while (chunk := await self.read_chunk()) is not None:
            yield chunk

    async def read_chunk(self) -> bytes | None:
        """Return the next non-empty piece, or ``None`` once the body ended.

        Not bounded by :attr:`max_size`: each piece read is flow-control
        credit given back, so the sender waits for a slow reader.

        :raises hcore_io.ReadTimeout: if the read timeout passed.
        :raises hcore_io.ConnectionClosed: if the connection ended first.
        """
        if self._done or self._closed:
            return None
        buffered = self._buffered
        if buffered:
            # Queued already: taken without a wait (see _buffered).
            chunk: bytes | None = buffered.popleft()
        else:
            try:
                chunk = await self._receive()
            except BaseException:
                await self.aclose()
                raise
        if chunk is None:
            self._done = True
            await self.aclose()
            return None
        self.bytes_read += len(chunk)
        return chunk

    async def aread(self) -> bytes:
        """Read the rest of the body and return it.

        :raises hcore_io.ResponseBodyTooLarge: if the rest is larger than
            :attr:`max_size` (known from ``content-length`` before reading,
            or found while reading); the stream is reset first, and later
            calls raise the same error.
        :raises hcore_io.ReadTimeout: if the read timeout passed.
        :raises hcore_io.ConnectionClosed: if the connection ended first.
        """
        if self._too_large is not None:
            raise self._too_large
        limit = self.max_size
        if (
            limit is not None
            and self.content_length is not None
            and not (self._done or self._closed)
            and self.content_length - self.bytes_read > limit
        ):
            # Fail fast: nothing of a body announced too large is read.
            await self._give_up(
                f"the response body's content-length ({self.content_length}) "
                f"is larger than the {limit} bytes allowed",
                limit,
                self.content_length,
            )
        buffered = self._buffered
        if buffered is not None and not (self._done or self._closed):
            # The rest is queued whole: what reading it piece by piece below
            # gives, in one step, when it fits (else the loop gives up).
            size = sum(map(len, buffered))
            if limit is None or size <= limit:
                body = b"".join(buffered)
                buffered.clear()
                self.bytes_read += size
                self._done = True
                await self.aclose()
                return body
        if limit is None:
            return b"".join([chunk async for chunk in self])
        chunks: list[bytes] = []
        held = 0
        # Bounded by the body, and by the limit: past it, reading stops.  No
        # async generator: one left suspended by the raise below would be
        # finalized by the garbage collector, which Trio warns about.
        while (chunk := await self.read_chunk()) is not None:
            held += len(chunk)
            if held > limit:
                chunks.clear()
                await self._give_up(
                    f"the response body is larger than the {limit} bytes allowed",
                    limit,
                    None,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def _give_up(self, message: str, limit: int, length: int | None) -> NoReturn:
        """Reset the stream and raise :exc:`ResponseBodyTooLarge`."""
        error = ResponseBodyTooLarge(message, limit=limit, content_length=length)
        self._too_large = error
        if self._fail is not None and not self._closed:
            self._fail()
        await self.aclose()
        raise error

    async def aclose(self) -> None:
        """Stop reading; an unfinished exchange is reset (HTTP/1.1: closed)."""
        if not self._closed:
            self._closed = True
            if self._close is not None:
                await self._close()


async def _end_of_body() -> None:
    """A whole body's ``receive``: its pieces are all in ``_buffered``."""


@dataclass
class Response:
    """An HTTP response; the body is read from :attr:`stream`.

    :param status: the status code.
    :param headers: the header fields (no pseudo-headers).
    :param http_version: ``"1.1"``, ``"2"`` or ``"3"``.
    :param stream: the body.
    :param request: the request this answers.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    http_version: str
    stream: ResponseStream
    request: Request
    #: Trailer fields, filled in once the body was read to its end.
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: The body, once :meth:`aread` read it.
    content: bytes | None = None
    #: Earlier responses of a redirect chain, oldest first.
    history: list[Response] = field(default_factory=list)

    @property
    def url(self) -> URL:
        """The URL the response came from."""
        return self.request.url

    def get_header(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """The first value of a header field (lower-case name), or ``default``."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    async def aread(self) -> bytes:
        """Read the whole body (once) and return it.

        :raises hcore_io.ResponseBodyTooLarge: if the body is larger than
            ``stream.max_size`` (the pool's ``max_response_body_size``); the
            stream is reset first.
        :raises hcore_io.ReadTimeout: if the read timeout passed.
        :raises hcore_io.ConnectionClosed: if the connection ended first.
        """
        if self.content is None:
            self.content = await self.stream.aread()
        return self.content

    async def aclose(self) -> None:
        """Stop reading the body and give the connection back."""
        await self.stream.aclose()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
