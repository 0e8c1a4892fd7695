"""One request/response exchange on a pooled connection.

The request's stream is opened, its body sent (``bytes`` in 1 MiB pieces,
an async iterable piece by piece, each send waiting for flow-control
credit), then the response's head is awaited, 1xx responses skipped.  The
:class:`~hcore_io.client.Response` returned reads its body from the stream
and releases the entry to the pool when the body ended or was closed; a
body dropped unread and unclosed is handed back by a finalizer (see
:meth:`ConnectionPool.abandoned`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio

from hcore import HCoreError, RemoteProtocolError
from hcore.events import (
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    InformationalResponseReceived,
    StreamResetReceived,
    StreamResetSent,
    TrailersReceived,
)
from hcore_io._exceptions import (
    ConnectionClosed,
    ReadError,
    WriteTimeout,
)
from hcore_io.client._clock import now
from hcore_io.client._models import Request, Response, ResponseStream, body_length
from hcore_io.connections import HTTPStream, StreamReset

if TYPE_CHECKING:
    from hcore_io.client._entry import PoolEntry
    from hcore_io.client._pool import ConnectionPool

__all__ = ("QUICUnconfirmed", "Refused", "exchange")

_T = TypeVar("_T")
# Body pieces handed to the connection at once.
_CHUNK = 1 << 20
# 1xx responses accepted before the final one.
_MAX_INFORMATIONAL = 32
# How long dropping a stream whose head was cut short may take.
_RESET_GRACE = 1.0
# Body bytes taken from the stream's queue with the response's head.
_PREFETCH = 64 << 10


class Refused(HCoreError):
    """The server did not process the request: it may be sent again."""

    def __init__(self, error: HCoreError) -> None:
        super().__init__(str(error))
        #: What to raise if it is not retried.
        self.error = error


class QUICUnconfirmed(HCoreError):
    """An HTTP/3 connection heard nothing from the server in time."""

    def __init__(self, message: str, *, via_alt_svc: bool) -> None:
        super().__init__(message)
        #: Whether the connection was chosen because of ``Alt-Svc``.
        self.via_alt_svc = via_alt_svc


def _status_and_fields(
    head: HeadersReceived,
) -> tuple[int, list[tuple[bytes, bytes]]]:
    """The status of a response head, and its fields without pseudo-headers.

    Pseudo-headers come first (every protocol puts them there), so one pass
    over them finds the status and where the fields begin.
    """
    headers = head.headers
    status = -1
    first = 0
    for name, value in headers:
        if name[:1] != b":":
            break
        first += 1
        if name == b":status" and status == -1:
            try:
                status = int(value)
            except ValueError:
                status = -2
    if status < 0:
        raise RemoteProtocolError("response without a valid :status")
    return status, list(headers[first:])


async def _send_body(stream: HTTPStream, request: Request) -> None:
    body = request.body
    write = request.timeouts.write
    if isinstance(body, bytes):
        # Bounded by the body's length.
        for offset in range(0, len(body), _CHUNK):
            piece = body[offset : offset + _CHUNK]
            await stream.send_data(
                piece, end_stream=offset + _CHUNK >= len(body), timeout=write
            )
        return
    # Bounded by the caller's iterable.
    async for piece in body:
        if piece:
            await stream.send_data(piece, timeout=write)
    await stream.send_data(b"", end_stream=True, timeout=write)


def _refusal(event: Event, stream: HTTPStream) -> HCoreError | None:
    """The error for an event that ends a request before its response."""
    codes = stream.connection.error_codes
    if isinstance(event, GoawayReceived):
        return Refused(ConnectionClosed("the server refused the request (GOAWAY)"))
    if isinstance(event, StreamResetReceived | StreamResetSent):
        error = ReadError(f"stream reset (error code {event.error_code:#x})")
        if isinstance(event, StreamResetReceived):
            if event.error_code == codes.refused_stream:
                return Refused(error)
        return error
    return None


async def _receive_head(stream: HTTPStream, request: Request) -> HeadersReceived:
    for _ in range(_MAX_INFORMATIONAL + 1):
        event = await stream.receive_event(timeout=request.timeouts.read)
        if isinstance(event, HeadersReceived):
            return event
        if isinstance(event, InformationalResponseReceived):
            continue
        error = _refusal(event, stream)
        if error is not None:
            raise error
        raise RemoteProtocolError(f"unexpected {event!r} before the response")
    raise RemoteProtocolError("too many informational responses")


async def _flush_head(
    stream: HTTPStream, pool: ConnectionPool, entry: PoolEntry, write: float | None
) -> None:
    """Write the rest of a request head the socket took only part of.

    :raises WriteTimeout: if ``write`` passed (the stream is closed then).
    """
    connection = stream.connection
    try:
        if write is None:
            await connection.flush()
            return
        timer = pool._write_timer
        scope = timer.scope(write, shared=entry.reports_unsent)
        with scope:
            try:
                await connection.flush()
                return
            finally:
                timer.done(scope)
    except BaseException:
        await _drop(stream)
        raise
    await _drop(stream)
    raise WriteTimeout(f"sending the request headers took longer than {write} s")


async def _drop(stream: HTTPStream) -> None:
    """Reset a stream whose head was cut short, as a cancelled ``open_stream`` does.

    Within a grace: the socket that blocked the head may block the reset too.
    """
    with anyio.CancelScope(shield=True), anyio.move_on_after(_RESET_GRACE):
        await stream.aclose()


async def _start(
    entry: PoolEntry, pool: ConnectionPool, request: Request
) -> tuple[HTTPStream, HeadersReceived]:
    connection = entry.connection
    assert connection is not None
    headers = request.header_block()
    body = request.body
    submitted = False

    def took_slot() -> None:
        # The next request may look at the connection's stream slots now,
        # while these headers are being written (and others join the write).
        nonlocal submitted
        submitted = True
        pool.opened_stream(entry)

    empty = isinstance(body, bytes) and not body
    write = request.timeouts.write
    stream: HTTPStream | None = None
    try:
        # Mostly written at once, with no scope or timer (see
        # open_stream_nowait); the waits below are the exceptions.
        stream = connection.open_stream_nowait(
            headers, end_stream=empty, on_submitted=took_slot
        )
        if stream is not None:
            if connection.write_pending:
                await _flush_head(stream, pool, entry, write)
        elif write is None:
            stream = await connection.open_stream(
                headers, end_stream=empty, on_submitted=took_slot
            )
        else:
            # One timer for all the pool's scopes (see _write_timer).
            timer = pool._write_timer
            scope = timer.scope(write, shared=entry.reports_unsent)
            with scope:
                try:
                    stream = await connection.open_stream(
                        headers, end_stream=empty, on_submitted=took_slot
                    )
                finally:
                    timer.done(scope)
            if stream is None:
                raise WriteTimeout(
                    f"sending the request headers took longer than {write} s"
                )
    except ConnectionClosed as exc:
        # Nothing was sent (GOAWAY, Connection: close): safe to send again.
        raise Refused(exc) from exc
    finally:
        if not submitted:
            pool.opened_stream(entry)
    try:
        try:
            if not empty:
                await _send_body(stream, request)
        except StreamReset as exc:
            # The server may answer (an early 413) before reading it all.
            if exc.by_peer and exc.error_code is None:
                raise Refused(ConnectionClosed(str(exc))) from exc
        return stream, await _receive_head(stream, request)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        raise


async def _start_watched(
    entry: PoolEntry, pool: ConnectionPool, request: Request
) -> tuple[HTTPStream, HeadersReceived]:
    """Start the exchange; give up if a new QUIC connection stays silent."""
    limit = pool.quic_connect_timeout if entry.via_alt_svc else request.timeouts.connect
    if entry.received.is_set() or limit is None:
        return await _start(entry, pool, request)
    return await run_watched(entry, limit, lambda: _start(entry, pool, request))


async def run_watched(
    entry: PoolEntry, limit: float, start: Callable[[], Awaitable[_T]]
) -> _T:
    """Run ``start``; give up if the new QUIC connection stays silent.

    :raises QUICUnconfirmed: nothing came from the server within ``limit``.
    """
    result: list[_T] = []
    silent = False

    async def watch() -> None:
        nonlocal silent
        with anyio.move_on_after(limit):
            await entry.received.wait()
            return
        silent = True
        # Closing the connection ends the start function's waits at once.
        connection = entry.connection
        assert connection is not None
        await connection.aclose()

    error: BaseException | None = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            try:
                result.append(await start())
            except HCoreError:
                if not silent:
                    raise
            group.cancel_scope.cancel()
    except BaseExceptionGroup as group_error:
        if len(group_error.exceptions) != 1:
            raise
        error = group_error.exceptions[0]
    if error is not None:
        # The task group wrapped start's own error: raise it as it is.
        raise error
    if silent or not result:
        raise QUICUnconfirmed(
            f"HTTP/3 server {entry.origin} did not answer within {limit} s",
            via_alt_svc=entry.via_alt_svc,
        )
    return result[0]


def _response(
    entry: PoolEntry,
    request: Request,
    status: int,
    fields: list[tuple[bytes, bytes]],
    body: ResponseStream,
    trailers: list[tuple[bytes, bytes]],
) -> Response:
    # Positional: a class called with keywords builds a dict for them.
    return Response(status, fields, entry.metrics.http_version, body, request, trailers)


async def exchange(
    pool: ConnectionPool, entry: PoolEntry, request: Request
) -> Response:
    """Run ``request`` on ``entry``'s connection; return once its head arrived.

    :raises Refused: the server did not process it (safe to send again).
    :raises QUICUnconfirmed: a new HTTP/3 connection stayed silent.
    """
    assert entry.connection is not None
    started = now()
    entry.metrics.requests += 1
    try:
        if entry.quic:
            stream, head = await _start_watched(entry, pool, request)
        else:
            stream, head = await _start(entry, pool, request)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await pool.release(entry, started, failed=True)
        raise
    status, fields = _status_and_fields(head)
    if pool._alt_svc is not None:
        for name, value in fields:
            if name == b"alt-svc":
                pool.learn_alt_svc(entry, value)
    trailers: list[tuple[bytes, bytes]] = []
    finished = head.end_stream
    failed = False
    # The body's events that came with the head (a small response arrives
    # whole in one read) are taken now, without a wait, up to _PREFETCH
    # bytes (beyond the stream's queue bound); the first other event (an
    # error) is left for the body's reader.
    pieces: deque[bytes] = deque()
    held: Event | None = None
    prefetched = 0
    # Bounded by the events already queued, and by _PREFETCH.
    while not finished and prefetched < _PREFETCH:
        queued = stream.receive_event_nowait()
        if queued is None:
            break
        if isinstance(queued, DataReceived):
            finished = queued.end_stream
            if queued.data:
                pieces.append(queued.data)
                prefetched += len(queued.data)
        elif isinstance(queued, TrailersReceived):
            trailers.extend(queued.headers)
            finished = True
        else:
            held = queued
            break

    limit = pool.limits.max_response_body_size
    length = body_length(request, status, fields)
    if finished and (limit is None or prefetched <= limit):
        # The whole response came with its head (a small one arrives in one
        # read): the exchange is over now, so the connection goes back to
        # the pool at once, not when the body is read, and the body is
        # read from memory.  Closing the stream resets nothing (see close
        # below).
        try:
            await stream.aclose()
        finally:
            await pool.release(entry, started, failed=False)
        whole = ResponseStream.whole(pieces, max_size=limit, content_length=length)
        response = _response(entry, request, status, fields, whole, trailers)
        if not pieces:
            response.content = b""
        return response

    async def receive() -> bytes | None:
        nonlocal finished, failed, held
        if pieces:
            return pieces.popleft()
        # Bounded: every event is data, the end, or an error.
        while not finished:
            if held is not None:
                event, held = held, None
            else:
                try:
                    event = await stream.receive_event(timeout=request.timeouts.read)
                except BaseException:
                    failed = True
                    raise
            if isinstance(event, DataReceived):
                finished = event.end_stream
                if event.data:
                    return event.data
            elif isinstance(event, TrailersReceived):
                trailers.extend(event.headers)
                finished = True
            else:
                failed = True
                error = _refusal(event, stream) or RemoteProtocolError(
                    f"unexpected {event!r} in a response body"
                )
                raise error.error if isinstance(error, Refused) else error
        return None

    async def close() -> None:
        # Closed in time: the safety net below is not called.
        if finished and not failed:
            # Over both ways (the request was sent whole before the head was
            # read): closing the stream resets nothing, it only writes what
            # the protocol has queued anyway (HTTP/2 window credit), and the
            # entry is released whatever happens.  A cancellation arriving
            # meanwhile leaves those bytes to the connection's next write
            # (see the connection layer's "Writes."), so no shield is needed
            # here: it costs a cancel scope on every request.
            try:
                await stream.aclose()
            finally:
                await pool.release(entry, started, failed=False)
            return
        with anyio.CancelScope(shield=True):
            await stream.aclose()
            await pool.release(entry, started, failed=failed)

    def fail() -> None:
        # A body too large for ResponseStream.aread: booked as a failure.
        nonlocal failed
        failed = True

    # The safety net (as urllib3 and httpx have one): a body nobody reads to
    # its end nor closes would keep its connection (HTTP/1.1) or stream slot
    # (HTTP/2, HTTP/3) out of the pool for good.  When the garbage collector
    # takes it, the pool is told, resets the stream and books the exchange
    # as failed.  The callback holds no reference to the body itself.
    url = request.url.raw
    body = ResponseStream(
        receive,
        close,
        max_size=limit,
        content_length=length,
        fail=fail,
        abandoned=lambda: pool.abandoned(entry, stream, started, url),
    )
    if finished and pieces:
        # The whole body came with the head, but more than max_size (which
        # its reader may raise): aread joins it at once if it then fits.
        body._buffered = pieces
    return _response(entry, request, status, fields, body, trailers)
