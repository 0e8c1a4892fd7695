"""Shared helpers for the HTTP/1.1 protocol tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from hcore.events import DataReceived, Event, HeadersReceived
from hcore.protocols import HTTPOverTCPFactory
from hcore.protocols.http1 import (
    H11ClientProtocol,
    H11ServerProtocol,
    HTTP1ClientFactory,
    HTTP1ServerFactory,
)
from hcore.protocols.http1._limits import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_PIPELINED_SIZE,
)
from tests.hcore.pairs import Splitter, TCPPair, drain, whole

Fields = list[tuple[bytes, bytes]]

#: The server factory class the helpers use; the
#: ``http1_helpers_implementation`` fixture (conftest) switches it so that a
#: module runs on every HTTP/1.1 implementation.  Servers are typed as
#: H11ServerProtocol for the tests' sake: every implementation has its
#: public interface.
SERVER_FACTORY: list[Callable[..., HTTPOverTCPFactory]] = [HTTP1ServerFactory]
#: The client factory class the helpers use, switched the same way; clients
#: are typed as H11ClientProtocol for the same reason.
CLIENT_FACTORY: list[Callable[..., HTTPOverTCPFactory]] = [HTTP1ClientFactory]


def make_pair(
    split: Splitter = whole,
    *,
    client_factory: HTTP1ClientFactory | None = None,
    server_factory: HTTP1ServerFactory | None = None,
    tls_version: str | None = None,
) -> tuple[TCPPair, H11ClientProtocol, H11ServerProtocol]:
    """A client and a server protocol joined in memory."""
    client = cast(
        H11ClientProtocol,
        (client_factory or CLIENT_FACTORY[0]())(tls_version=tls_version),
    )
    server = cast(
        H11ServerProtocol,
        (server_factory or SERVER_FACTORY[0]())(tls_version=tls_version),
    )
    return TCPPair(client, server, split), client, server


def new_server(
    *,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
    max_pipelined_size: int = DEFAULT_MAX_PIPELINED_SIZE,
) -> H11ServerProtocol:
    """A server protocol with the given limits, made by its factory."""
    factory = SERVER_FACTORY[0](
        max_header_size=max_header_size,
        max_header_count=max_header_count,
        max_pipelined_size=max_pipelined_size,
    )
    return cast(H11ServerProtocol, factory())


def new_client(
    *,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
) -> H11ClientProtocol:
    """A client protocol with the given limits, made by its factory."""
    factory = CLIENT_FACTORY[0](
        max_header_size=max_header_size, max_header_count=max_header_count
    )
    return cast(H11ClientProtocol, factory())


def req(
    method: bytes = b"GET",
    path: bytes = b"/",
    authority: bytes = b"example.com",
    *extra: tuple[bytes, bytes],
) -> Fields:
    """A request header block."""
    return [
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", authority),
        (b":path", path),
        *extra,
    ]


def resp(status: bytes = b"200", *extra: tuple[bytes, bytes]) -> Fields:
    """A response header block."""
    return [(b":status", status), *extra]


def feed_server(
    raw: bytes, server: H11ServerProtocol | None = None
) -> tuple[H11ServerProtocol, list[Event], bytes]:
    """Feed raw bytes to a server; return it, its events and its answer."""
    server = server or new_server()
    server.bytes_received(raw)
    return server, drain(server), server.bytes_to_send()


def open_client(
    request: Fields | None = None, end_stream: bool = True
) -> tuple[H11ClientProtocol, int, bytes]:
    """A client that sent one request; return it, the stream id and the bytes."""
    client = new_client()
    stream_id = client.get_available_stream_id()
    client.submit_headers(stream_id, request or req(), end_stream=end_stream)
    return client, stream_id, client.bytes_to_send()


def normalize(events: Sequence[Event]) -> list[Event]:
    """Merge what a byte split can change: how data is cut into events.

    Consecutive ``DataReceived`` on one stream become one, and a lone
    ``end_stream`` folds into the event before it.
    """
    out: list[Event] = []
    for event in events:
        last = out[-1] if out else None
        if (
            isinstance(event, DataReceived)
            and isinstance(last, DataReceived)
            and last.stream_id == event.stream_id
            and not last.end_stream
        ):
            out[-1] = DataReceived(
                event.stream_id, last.data + event.data, event.end_stream
            )
        elif (
            isinstance(event, DataReceived)
            and not event.data
            and event.end_stream
            and isinstance(last, HeadersReceived)
            and last.stream_id == event.stream_id
            and not last.end_stream
        ):
            out[-1] = HeadersReceived(last.stream_id, last.headers, True)
        else:
            out.append(event)
    return out


def body_of(events: Sequence[Event], stream_id: int) -> bytes:
    """Concatenate the data a stream received."""
    return b"".join(
        e.data
        for e in events
        if isinstance(e, DataReceived) and e.stream_id == stream_id
    )


def header_value(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of a field, or ``None``."""
    for field, value in headers:
        if field == name:
            return value
    return None
