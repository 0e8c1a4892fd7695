"""How one connection's streams are accepted and run, for :class:`HTTPServer`.

This holds the per-connection serving loops of
:class:`~hcore_io.server._base.HTTPServer`, apart from what a request gets:

* :func:`serve_sequential` (HTTP/1.1) runs exchanges one after the other in
  the connection's task, bounding the wait for each request head by
  ``request_header_timeout`` (the first) or ``keep_alive_timeout`` (the next).
* :func:`serve_multiplexed` (HTTP/2, HTTP/3) runs each stream in a worker
  task of the connection's task group (reused from stream to stream, see
  :mod:`hcore_io.server._stream_workers`), refuses HTTP/3 streams beyond
  ``max_concurrent_streams`` (``REFUSED_STREAM``) and closes the connection
  after ``keep_alive_timeout`` with no stream in flight.
* :class:`ConnectionState` is the server's bookkeeping of one connection,
  which a graceful close uses to wake a connection that waits idle.

The refusals (503 to a connection over the limit, 431 to an HTTP/3 field
section too large, a stream reset) are here too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from hcore import HCoreError, Headers
from hcore_io._exceptions import NetworkError, ReadTimeout
from hcore_io.connections import HTTPConnection, HTTPStream
from hcore_io.server._stream_workers import RunStream, StreamWorkers

__all__ = (
    "ConnectionState",
    "answer_too_large",
    "field_section_size",
    "refuse_connection",
    "refuse_stream",
    "serve_multiplexed",
    "serve_sequential",
)

logger = logging.getLogger("hcore.server")

#: What the streams of one connection share (the server's per-connection context).
_Context = TypeVar("_Context")

# How long a connection over the limit gets to send the request it is refused.
_BUSY_GRACE = 1.0


class ConnectionState:
    """The server's bookkeeping of one connection."""

    __slots__ = (
        "accept_scope",
        "active",
        "closing",
        "connection",
        "idle_deadline",
        "refuses_extra_streams",
    )

    def __init__(self, connection: HTTPConnection) -> None:
        self.connection = connection
        self.active = 0
        self.closing = False
        self.accept_scope: anyio.CancelScope | None = None
        self.idle_deadline = math.inf
        self.refuses_extra_streams = connection.http_version == "3"

    async def begin_close(self) -> None:
        """Start a graceful close; an idle connection stops waiting at once."""
        self.closing = True
        try:
            await self.connection.close_gracefully()
        except HCoreError:
            pass
        self.wake_if_idle()

    def wake_if_idle(self) -> None:
        """Stop the wait for a next stream if closing with none in flight."""
        if self.closing and not self.active and self.accept_scope is not None:
            self.accept_scope.cancel()


def field_section_size(headers: Headers) -> int:
    """The size of a field section as HTTP/2 and HTTP/3 bound it.

    :param headers: the fields.
    :return: name and value lengths plus 32 for each field.
    """
    # RFC 9114 §4.2.2 (as RFC 9113 §6.5.2): name and value lengths plus 32
    # for each field.
    return sum(len(name) + len(value) + 32 for name, value in headers)


async def answer_too_large(stream: HTTPStream) -> None:
    """Answer 431 (Request Header Fields Too Large) and close the stream."""
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


async def refuse_connection(connection: HTTPConnection, reason: str) -> None:
    """Answer the connection's first request 503 and close it gracefully.

    :param reason: why, for the log.
    """
    logger.warning(
        "refusing a connection from %s: %s", connection.remote_address, reason
    )
    body = b"Service Unavailable\n"
    with anyio.move_on_after(_BUSY_GRACE):
        stream = await connection.accept_stream()
        if stream is None:
            return
        try:
            # After the request arrived: HTTP/1.1 then adds
            # "Connection: close" to the answer instead of closing now.
            await connection.close_gracefully()
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


async def refuse_stream(stream: HTTPStream) -> None:
    """Reset a stream with REFUSED_STREAM (safe for the client to retry)."""
    try:
        await stream.send_stream_reset(stream.connection.error_codes.refused_stream)
    except (HCoreError, NetworkError):
        pass
    await stream.aclose()


async def serve_sequential(
    state: ConnectionState,
    run_stream: Callable[[_Context, HTTPStream], Awaitable[None]],
    context: _Context,
    *,
    request_header_timeout: float,
    keep_alive_timeout: float,
    on_end: Callable[[ConnectionState], object],
) -> None:
    """Serve an HTTP/1.1 connection's exchanges one after the other.

    The coroutine an idle connection waits in (a server holds one per open
    connection): the server's bookkeeping comes as ``on_end`` rather than
    as a caller's frame, and no cancel scope is kept, since a graceful
    close makes :meth:`~hcore_io.connections.HTTPConnection.accept_stream`
    return ``None`` by itself.  The wait for the next request head is
    bounded by ``accept_stream``'s timeout, which the read the wait does
    anyway applies: no timer to set and lift around each request.

    :param state: the connection's bookkeeping.
    :param run_stream: what each request stream gets, with ``context``.
    :param context: what the connection's streams share.
    :param request_header_timeout: seconds the first request head gets.
    :param keep_alive_timeout: seconds each next request head gets.
    :param on_end: called with ``state`` when serving ends, however it ends.
    """
    try:
        connection = state.connection
        timeout = request_header_timeout
        # Bounded by the requests the client sends and the timeouts.
        while not state.closing:
            try:
                stream = await connection.accept_stream(timeout=timeout)
            except ReadTimeout:
                return
            if stream is None:
                return
            state.active = 1
            try:
                await run_stream(context, stream)
            finally:
                state.active = 0
            # Not kept through the wait for the next request.
            del stream
            timeout = keep_alive_timeout
    finally:
        on_end(state)


async def serve_multiplexed(
    state: ConnectionState,
    run_stream: RunStream,
    *,
    max_streams: int,
    request_header_timeout: float,
    keep_alive_timeout: float,
) -> None:
    """Serve an HTTP/2 or HTTP/3 connection's streams, each in a worker task.

    :param state: the connection's bookkeeping.
    :param run_stream: what each request stream gets.
    :param max_streams: streams in flight at once (HTTP/3 refuses more here).
    :param request_header_timeout: seconds the first stream gets to come.
    :param keep_alive_timeout: seconds the connection is kept with no
        stream in flight.
    """
    connection = state.connection
    state.idle_deadline = anyio.current_time() + request_header_timeout
    async with anyio.create_task_group() as streams:
        workers = StreamWorkers(
            streams, state, run_stream, keep_alive_timeout, max_idle=max_streams
        )
        try:
            await _accept_streams(state, workers, max_streams)
        finally:
            # Idle workers leave; busy ones finish their streams first.
            workers.close()
        if not state.closing:
            # Idle for keep_alive_timeout, or over: GOAWAY and close.
            await connection.aclose()


async def _accept_streams(
    state: ConnectionState, workers: StreamWorkers, max_streams: int
) -> None:
    """Accept streams and hand them to the workers until the connection ends."""
    connection = state.connection
    # Bounded by the streams the client opens and the timeouts.
    while not state.closing or state.active:
        stream: HTTPStream | None = None
        # One scope for stream after stream (see serve_sequential);
        # what is not the common case is handled outside it.
        with anyio.CancelScope() as scope:
            state.accept_scope = scope
            # Bounded by the streams the client opens.
            while not state.closing or state.active:
                if state.active:
                    if scope.deadline != math.inf:
                        scope.deadline = math.inf
                else:
                    scope.deadline = state.idle_deadline
                stream = await connection.accept_stream()
                if (
                    stream is None
                    or scope.cancel_called
                    or state.closing
                    or (state.refuses_extra_streams and state.active >= max_streams)
                ):
                    break
                state.active += 1
                workers.run(stream)
                stream = None
        state.accept_scope = None
        if scope.cancelled_caught:
            if state.closing or (
                not state.active and anyio.current_time() >= state.idle_deadline
            ):
                return
            continue
        if stream is None:
            return
        # HTTP/2 advertises the limit (SETTINGS_MAX_CONCURRENT_STREAMS)
        # and its protocol refuses streams over it; HTTP/3's is kept
        # here (QUIC's stream credit is aioquic's own, larger one).
        if state.closing or (
            state.refuses_extra_streams and state.active >= max_streams
        ):
            await refuse_stream(stream)
            continue
        state.active += 1
        workers.run(stream)
