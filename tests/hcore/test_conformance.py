"""The same application code gives the same events on every HTTP version.

Every conversation here is written once against :class:`HTTPProtocol` and run
over each registered implementation pair: every client implementation of a
version against every server implementation of it, in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import pytest

from hcore import Headers
from hcore.events import (
    DataReceived,
    Event,
    HeadersReceived,
    InformationalResponseReceived,
    TrailersReceived,
)
from hcore.protocols import HTTPProtocol, default_registry
from tests.hcore.pairs import TCPPair


class Link(Protocol):
    """A client and a server protocol joined in memory."""

    @property
    def client(self) -> HTTPProtocol: ...

    @property
    def server(self) -> HTTPProtocol: ...

    def pump(self) -> object: ...


def _tcp_links() -> Iterator[tuple[str, Callable[[], Link]]]:
    for version in ("1.1", "2"):
        for client_name in default_registry.names(version):
            for server_name in default_registry.names(version):

                def make(
                    version: str = version, c: str = client_name, s: str = server_name
                ) -> Link:
                    return TCPPair(
                        default_registry.tcp_client_factory(version, c)(),
                        default_registry.tcp_server_factory(version, s)(),
                    )

                yield f"HTTP/{version}:{client_name}x{server_name}", make


LINKS = dict(_tcp_links())


@pytest.fixture(params=sorted(LINKS))
def link(request: pytest.FixtureRequest) -> Link:
    made = LINKS[request.param]()
    made.pump()  # let prefaces and settings settle
    return made


def _request(
    path: bytes = b"/", method: bytes = b"GET", *extra: tuple[bytes, bytes]
) -> Headers:
    return [
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", b"example.test"),
        (b":path", path),
        *extra,
    ]


def _take(protocol: HTTPProtocol, stream_id: int | None = None) -> list[Event]:
    events: list[Event] = []
    for _ in range(10_000):
        event = protocol.next_event()
        if event is None:
            return [
                e
                for e in events
                if stream_id is None or getattr(e, "stream_id", None) == stream_id
            ]
        events.append(event)
    raise AssertionError("too many events")


def _opened(events: list[Event]) -> HeadersReceived:
    """The header block that opens a stream's events."""
    assert isinstance(events[0], HeadersReceived), events
    return events[0]


def _body(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, DataReceived))


def _ended(events: list[Event]) -> bool:
    last = events[-1]
    return isinstance(last, TrailersReceived) or bool(
        getattr(last, "end_stream", False)
    )


def _pseudo(headers: Headers) -> dict[bytes, bytes]:
    return {name: value for name, value in headers if name.startswith(b":")}


def _value(headers: Headers, name: bytes) -> bytes | None:
    return next((v for n, v in headers if n == name), None)


def test_get_with_response_body(link: Link) -> None:
    sid = link.client.get_available_stream_id()
    link.client.submit_headers(sid, _request(b"/hello?x=1"), end_stream=True)
    link.pump()
    [request] = _take(link.server)
    assert isinstance(request, HeadersReceived)
    assert request.end_stream
    assert _pseudo(request.headers) == {
        b":method": b"GET",
        b":scheme": b"http",
        b":authority": b"example.test",
        b":path": b"/hello?x=1",
    }
    link.server.submit_headers(
        request.stream_id, [(b":status", b"200"), (b"content-length", b"13")]
    )
    link.server.submit_data(request.stream_id, b"Hello, world!", end_stream=True)
    link.pump()
    events = _take(link.client, sid)
    assert isinstance(events[0], HeadersReceived)
    assert _pseudo(events[0].headers) == {b":status": b"200"}
    assert _value(events[0].headers, b"content-length") == b"13"
    assert _body(events[1:]) == b"Hello, world!"
    assert _ended(events)


def test_post_body_is_echoed(link: Link) -> None:
    body = bytes(range(256)) * 64
    sid = link.client.get_available_stream_id()
    link.client.submit_headers(
        sid, _request(b"/echo", b"POST", (b"content-length", str(len(body)).encode()))
    )
    link.client.submit_data(sid, body[:1000])
    link.client.submit_data(sid, body[1000:], end_stream=True)
    link.pump()
    events = _take(link.server)
    assert isinstance(events[0], HeadersReceived)
    assert not events[0].end_stream
    assert _body(events) == body
    assert _ended(events)
    server_sid = events[0].stream_id
    link.server.submit_headers(server_sid, [(b":status", b"201")])
    link.server.submit_data(server_sid, body, end_stream=True)
    link.pump()
    response = _take(link.client, sid)
    assert _pseudo(_opened(response).headers) == {b":status": b"201"}
    assert _body(response) == body
    assert _ended(response)


def test_trailers_both_ways(link: Link) -> None:
    sid = link.client.get_available_stream_id()
    link.client.submit_headers(sid, _request(b"/t", b"POST", (b"te", b"trailers")))
    link.client.submit_data(sid, b"part")
    link.client.submit_headers(sid, [(b"x-checksum", b"abc")], end_stream=True)
    link.pump()
    events = _take(link.server)
    assert _body(events) == b"part"
    server_sid = _opened(events).stream_id
    assert events[-1] == TrailersReceived(server_sid, [(b"x-checksum", b"abc")])
    link.server.submit_headers(server_sid, [(b":status", b"200")])
    link.server.submit_data(server_sid, b"answer")
    link.server.submit_headers(server_sid, [(b"grpc-status", b"0")], end_stream=True)
    link.pump()
    response = _take(link.client, sid)
    assert _body(response) == b"answer"
    assert response[-1] == TrailersReceived(sid, [(b"grpc-status", b"0")])


def test_informational_response_before_final(link: Link) -> None:
    sid = link.client.get_available_stream_id()
    link.client.submit_headers(
        sid,
        _request(
            b"/upload", b"PUT", (b"expect", b"100-continue"), (b"content-length", b"4")
        ),
    )
    link.pump()
    [request] = _take(link.server)
    assert isinstance(request, HeadersReceived)
    link.server.submit_headers(request.stream_id, [(b":status", b"100")])
    link.pump()
    assert _take(link.client, sid) == [
        InformationalResponseReceived(sid, [(b":status", b"100")])
    ]
    link.client.submit_data(sid, b"data", end_stream=True)
    link.pump()
    assert _body(_take(link.server)) == b"data"
    link.server.submit_headers(
        request.stream_id, [(b":status", b"204")], end_stream=True
    )
    link.pump()
    [final] = _take(link.client, sid)
    assert isinstance(final, HeadersReceived)
    assert final.end_stream
    assert _pseudo(final.headers) == {b":status": b"204"}


def test_sequential_requests_reuse_the_connection(link: Link) -> None:
    seen: list[int] = []
    for n in range(20):
        assert link.client.is_available()
        sid = link.client.get_available_stream_id()
        assert sid not in seen
        seen.append(sid)
        link.client.submit_headers(sid, _request(f"/{n}".encode()), end_stream=True)
        link.pump()
        [request] = _take(link.server)
        assert isinstance(request, HeadersReceived)
        assert _pseudo(request.headers)[b":path"] == f"/{n}".encode()
        link.server.submit_headers(
            request.stream_id, [(b":status", b"200"), (b"content-length", b"1")]
        )
        link.server.submit_data(request.stream_id, b"k", end_stream=True)
        link.pump()
        assert _body(_take(link.client, sid)) == b"k"
    assert not link.client.has_expired()
    assert not link.server.has_expired()
