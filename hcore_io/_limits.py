"""Limits: every bound the I/O layer keeps, with its safe default, in one object.

The servers (:class:`~hcore_io.server.ASGIServer`,
:class:`~hcore_io.server.HTTPServer`, :class:`~hcore_io.server.ProxyServer`),
the :class:`~hcore_io.client.ConnectionPool` and the
:class:`~hcore_io.client.Client` take ``limits: Limits | None``; each field
is the default of the keyword argument of the same name those classes still
accept.  Precedence: an individual keyword argument given (not ``None``)
wins over the field of ``limits``, which wins over the default here.  A
field a class has no use for is ignored by it (a client has no
``max_connections`` of the server's kind).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hcore.protocols.http1._limits import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_PIPELINED_SIZE,
)
from hcore.sse import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_SIZE
from hcore.websocket import DEFAULT_MAX_MESSAGE_SIZE
from hcore_io.connections import DEFAULT_MAX_BUFFERED_DATA

__all__ = ("Limits", "resolve_limits")


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds that keep a hostile or broken peer from exhausting a process.

    Build one with the fields to change (``Limits(max_body_size=1 << 20)``)
    or derive one (``dataclasses.replace(limits, ...)``).  Sizes are in bytes,
    times in seconds.

    :raises ValueError: if a size or time is not positive (``shutdown_timeout``
        may be 0).
    """

    #: Server: connections served at once.  One more is answered 503
    #: (``Retry-After: 1``) to its first request and closed.
    max_connections: int = 1000
    #: Server: requests in flight on one HTTP/2 or HTTP/3 connection.
    #: HTTP/2 advertises it (SETTINGS_MAX_CONCURRENT_STREAMS) and resets a
    #: stream over it with REFUSED_STREAM; HTTP/3 resets it with
    #: H3_REQUEST_REJECTED.  Both are safe for the client to retry.
    max_concurrent_streams: int = 100
    #: Server and client: largest header section received.  Server,
    #: HTTP/1.1: 431 and the connection closed; HTTP/2: the stream is reset
    #: (and SETTINGS_MAX_HEADER_LIST_SIZE advertises it); HTTP/3: 431.
    #: Client (HTTP/1.1 and HTTP/2; HTTP/3's client factory takes no such
    #: bound): the response fails with a protocol error.
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    #: Server and client, HTTP/1.1: most header fields in one head; more is
    #: treated as a head too large (431 on the server).
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT
    #: Server: largest request body.  A larger ``Content-Length`` gets 413
    #: before the application runs; a body growing past it gets 413 (or a
    #: reset if the response began) and the rest of the body is refused.
    max_body_size: int = 100 * 1024 * 1024
    #: Client: largest response body read whole (``Response.aread()``, and
    #: so ``Client.request()``, ``get()``, ...).  A larger
    #: ``content-length`` fails the read before any of the body is read; a
    #: body growing past it fails the read as soon as it does.  Either way
    #: :exc:`~hcore_io.ResponseBodyTooLarge` is raised and the stream reset
    #: (HTTP/1.1: the connection is closed, not reused; HTTP/2 and HTTP/3:
    #: the connection's other streams go on).  A body read piece by piece
    #: (``async for chunk in response.stream``) is not bounded by it: flow
    #: control (``max_buffered_data``) bounds what is held then.
    max_response_body_size: int = 100 * 1024 * 1024
    #: Server, HTTP/1.1: most bytes held that a client sent ahead of the
    #: response it waits for (pipelined requests, early tunnel bytes);
    #: beyond it the connection ends as a protocol error.
    max_pipelined_size: int = DEFAULT_MAX_PIPELINED_SIZE
    #: Server: seconds an idle connection is kept (HTTP/1.1 between
    #: requests, HTTP/2 and HTTP/3 with no stream in flight); then it is
    #: closed (GOAWAY on HTTP/2 and HTTP/3).
    keep_alive_timeout: float = 5.0
    #: Server: seconds a new connection gets to send its first request head
    #: (a plain-TCP one its first bytes too); then it is closed.  A head
    #: dribbled a byte at a time (slowloris) is cut off the same way.
    request_header_timeout: float = 10.0
    #: Server: seconds the application waits for the next piece of a
    #: request body (an idle-read deadline, as nginx's
    #: ``client_body_timeout``: a body dribbled a byte per pause longer than
    #: this is cut off; one dribbled faster is bounded by
    #: ``max_body_size`` and ``max_connections`` only).  Crossed, the
    #: request gets 408 (or a reset if the response began), the stream is
    #: given up (on HTTP/1.1 the connection closes) and ``receive()``
    #: answers ``http.disconnect``.
    body_timeout: float = 30.0
    #: Server: seconds requests in flight get to finish at shutdown; what
    #: is still running then is cancelled.
    shutdown_timeout: float = 30.0
    #: Server (plain TCP with TLS): seconds a client gets to finish the TLS
    #: handshake when the server makes its own networking backend; then the
    #: connection is dropped.
    tls_handshake_timeout: float = 10.0
    #: Server (ProxyServer): seconds to reach a ``CONNECT`` target; then
    #: the tunnel is answered 504.
    connect_timeout: float = 10.0
    #: Server and client: bytes buffered per stream in each direction (and
    #: the receive window offered on HTTP/2 and HTTP/3 is derived from it);
    #: a peer sending more waits for flow-control credit.
    max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA
    #: Server and client: largest WebSocket message received, after
    #: decompression; a larger one closes the WebSocket with 1009.
    websocket_max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    #: Server: seconds the WebSocket closing handshake may take; then the
    #: stream is dropped.
    websocket_close_timeout: float = 5.0
    #: Client (Server-Sent Events): longest line accepted, in characters;
    #: a longer one fails the event source without reconnecting.
    sse_max_line_size: int = DEFAULT_MAX_LINE_SIZE
    #: Client (Server-Sent Events): most data one event may gather, in
    #: characters; more fails the event source without reconnecting.
    sse_max_event_size: int = DEFAULT_MAX_EVENT_SIZE

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "shutdown_timeout":
                if not value >= 0:
                    raise ValueError("shutdown_timeout must not be negative")
            elif not value > 0:
                raise ValueError(f"{field.name} must be positive, not {value!r}")


def resolve_limits(limits: Limits | None, **overrides: int | float | None) -> Limits:
    """``limits`` (or the defaults) with the overrides that are not ``None``.

    :param limits: the limits given, or ``None`` for :class:`Limits` defaults.
    :param overrides: individual keyword arguments, ``None`` when not given.
    :return: the limits to use.
    :raises ValueError: if a value is not valid.
    """
    base = limits if limits is not None else Limits()
    given = {name: value for name, value in overrides.items() if value is not None}
    if not given:
        return base
    return dataclasses.replace(base, **given)  # type: ignore[arg-type]
