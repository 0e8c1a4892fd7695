"""Opening a client WebSocket: picking the HTTP version, the handshake.

The WebSocket goes where a request to its ``http(s)`` URL would: the pool
picks (or opens) a connection to the origin, HTTP/2 by ALPN over TLS (or
with prior knowledge), HTTP/3 when the pool uses it.  Then:

* HTTP/1.1: an ``Upgrade`` (RFC 6455 §4); the connection is the
  WebSocket's until it ends, then closed (it cannot carry requests again);
* HTTP/2: an extended CONNECT (RFC 8441), once the server's SETTINGS said
  it accepts one (``SETTINGS_ENABLE_CONNECT_PROTOCOL``, §3).  A server
  that does not is asked for an HTTP/1.1 ``Upgrade`` on a connection of
  the WebSocket's own;
* HTTP/3: an extended CONNECT (RFC 9220);

so several WebSockets share one HTTP/2 or HTTP/3 connection, beside the
requests.  ``http_version="1.1"`` asks for an ``Upgrade`` on a connection
of its own; ``"2"`` or ``"3"`` insist on that version of the pool's
connection.

The connection is leased from the pool (:meth:`ConnectionPool.lease`), so
the pool's books are kept as for a request: the connection is held (its
stream slot taken) while the WebSocket is open, and given back at its end;
an upgraded HTTP/1.1 connection is retired.  A handshake that fails on a
stale pooled connection is tried once more on a new one, and one over an
HTTP/3 connection from ``Alt-Svc`` that stays silent goes over TCP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio

from hcore import HCoreError, LocalProtocolError
from hcore.events import DataReceived, Event, HeadersReceived
from hcore.websocket import (
    DEFAULT_MAX_MESSAGE_SIZE,
    ClientHandshake,
    PerMessageDeflate,
    WebSocketAccepted,
)
from hcore_io._exceptions import ConnectError, ReadError
from hcore_io.client._lease import PooledConnection
from hcore_io.client._models import URL, Request
from hcore_io.client._pool import ConnectionPool
from hcore_io.client._websocket import WebSocket, WebSocketRejected
from hcore_io.connections import HTTPConnection, HTTPStream

__all__ = ("connect_websocket", "http_url")

_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
# The part of a refusal's body kept for WebSocketRejected.
_BODY_LIMIT = 65536
# RFC 6455 §7.1.5: the code when the stream ended without a Close frame.
_ABNORMAL = 1006


class _NoExtendedConnect(ConnectError):
    """The HTTP/2 server did not enable extended CONNECT (RFC 8441 §3)."""


def http_url(url: str) -> URL:
    """The ``http(s)`` URL of a ``ws(s)`` one (RFC 6455 §3, RFC 8441 §4).

    :raises ValueError: if it is not a ws, wss, http or https URL.
    """
    scheme, colon, rest = url.partition(":")
    mapped = _SCHEMES.get(scheme.lower())
    if not colon or mapped is None:
        raise ValueError(f"not a WebSocket URL: {url!r}")
    return URL(mapped + ":" + rest)


async def _read_refusal(stream: HTTPStream, head: HeadersReceived) -> bytes:
    body = bytearray()
    if head.end_stream:
        return b""
    with anyio.move_on_after(5.0):
        try:
            # Bounded by the body limit and the timeout.
            async for event in stream:
                if isinstance(event, DataReceived):
                    body += event.data
                    if event.end_stream or len(body) >= _BODY_LIMIT:
                        break
        except HCoreError:
            pass
    return bytes(body[:_BODY_LIMIT])


async def _handshake(
    connection: HTTPConnection,
    request: Request,
    subprotocols: Sequence[str],
    extensions: Sequence[PerMessageDeflate],
) -> tuple[HTTPStream, WebSocketAccepted]:
    """Open the stream and run the handshake on it.

    :raises WebSocketRejected: if the server refused.
    :raises LocalProtocolError: if HTTP/2's extended CONNECT is not enabled.
    """
    origin = request.url.origin
    handshake = ClientHandshake(
        connection.http_version,
        authority=origin.authority,
        path=request.url.target,
        scheme=origin.scheme,
        subprotocols=subprotocols,
        extensions=extensions,
        headers=request.headers,
    )
    try:
        stream = await connection.open_stream(handshake.request_headers)
    except LocalProtocolError as exc:
        if connection.http_version != "2":
            raise
        raise _NoExtendedConnect(
            f"the HTTP/2 server {origin} does not accept extended CONNECT"
        ) from exc
    try:
        head: Event | None = None
        # Bounded: 1xx responses are few (the connection caps their queue).
        while not isinstance(head, HeadersReceived):
            head = await stream.receive_event(timeout=request.timeouts.read)
            if not isinstance(head, HeadersReceived) and hasattr(head, "error_code"):
                # A reset or GOAWAY: as for a request, a stale pooled
                # connection's is retried on a new one.
                raise ReadError(f"the WebSocket handshake failed: {head!r}")
        outcome = handshake.receive_response(head.headers)
        if not isinstance(outcome, WebSocketAccepted):
            body = await _read_refusal(stream, head)
            fields = tuple((n, v) for n, v in head.headers if n[:1] != b":")
            raise WebSocketRejected(outcome.status, outcome.reason, fields, body)
        return stream, outcome
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        raise


_Opened = tuple[HTTPStream, WebSocketAccepted]


@asynccontextmanager
async def _leased(
    pool: ConnectionPool,
    request: Request,
    http_version: str | None,
    subprotocols: Sequence[str],
    extensions: Sequence[PerMessageDeflate],
) -> AsyncIterator[tuple[PooledConnection, HTTPStream, WebSocketAccepted]]:
    """Lease a connection and run the handshake on it (see the module doc)."""

    async def start(leased: PooledConnection) -> _Opened | None:
        version = leased.http_version
        if http_version is not None and version != http_version:
            raise ConnectError(
                f"the connection to {request.url.origin} is HTTP/{version}"
            )
        if version == "2":
            await leased.wait_for_server(request.timeouts.connect)
        try:
            return await _handshake(
                leased.connection, request, subprotocols, extensions
            )
        except _NoExtendedConnect:
            # RFC 8441 §3: ask for an Upgrade instead, on HTTP/1.1.
            if http_version is not None:
                raise
            return None

    timeouts = request.timeouts
    if http_version != "1.1":
        async with pool.lease(request.url, start, timeouts=timeouts) as (
            leased,
            opened,
        ):
            if opened is not None:
                yield leased, *opened
                return
    async with pool.lease(request.url, start, timeouts=timeouts, http1_only=True) as (
        leased,
        opened,
    ):
        # HTTP/1.1 has no extended CONNECT to be refused.
        assert opened is not None
        yield leased, *opened


@asynccontextmanager
async def connect_websocket(
    pool: ConnectionPool,
    request: Request,
    *,
    subprotocols: Sequence[str] = (),
    http_version: str | None = None,
    deflate: bool = True,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    close_timeout: float = 5.0,
) -> AsyncIterator[WebSocket]:
    """Open a WebSocket to ``request.url`` through ``pool`` (see the module doc).

    :raises WebSocketRejected: if the server answered without opening it.
    :raises hcore_io.ConnectError: if the version asked for is not the
        pool's, or the server broke the handshake.
    """
    if http_version not in (None, "1.1", "2", "3"):
        raise ValueError(f"unknown HTTP version {http_version!r}")
    extensions = (PerMessageDeflate(),) if deflate else ()
    async with _leased(pool, request, http_version, subprotocols, extensions) as (
        leased,
        stream,
        accepted,
    ):
        if not leased.connection.multiplexed:
            # The upgraded connection cannot carry requests again.
            leased.retire()
        websocket = WebSocket(
            stream,
            accepted.session(max_message_size=max_message_size),
            subprotocol=accepted.subprotocol,
            headers=tuple((n, v) for n, v in accepted.headers if n[:1] != b":"),
            close_timeout=close_timeout,
        )
        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(websocket.run_reader)
                code = 1000
                try:
                    yield websocket
                except Exception:
                    code = 1011
                    raise
                finally:
                    await websocket.aclose(code)
                    group.cancel_scope.cancel()
        except BaseExceptionGroup as group_error:
            # The reader never fails: the group wraps the caller's error.
            if len(group_error.exceptions) != 1:
                raise
            error = group_error.exceptions[0]
        finally:
            # A failure of the WebSocket itself counts as the request's
            # (RFC 6455 §7.4.1); the 3000-4999 codes are applications' own.
            code = websocket.close_code or _ABNORMAL
            if code not in (1000, 1001, 1005) and code < 3000:
                leased.fail()
        if error is not None:
            raise error
