"""What an HTTP/1.1 protocol keeps per connection, and its fast paths.

An idle keep-alive connection should hold little: every protocol's state is
in ``__slots__`` (no instance dictionary), the queues it needs only while
the peer sends ahead are not there when idle, and the events queue gives
back its storage once drained.  The fast paths taken for the common request
and response heads must give the same blocks and the same refusals as the
general ones.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from hcore._errors import LocalProtocolError
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols import HTTPOverTCPProtocol
from hcore.protocols.http1._headers import plan_response_head, request_block
from tests.hcore.conftest import HTTP1FactoryMaker

REQUEST = b"GET /hello HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
RESPONSE = [(b":status", b"200"), (b"content-length", b"2")]


def serve_one(factory: HTTP1FactoryMaker) -> HTTPOverTCPProtocol:
    """A server protocol after one request and its response."""
    server = factory()()
    server.bytes_received(REQUEST)
    event = server.next_event()
    assert isinstance(event, HeadersReceived) and event.end_stream
    assert server.next_event() is None
    server.submit_headers(event.stream_id, RESPONSE)
    server.submit_data(event.stream_id, b"ok", end_stream=True)
    assert server.bytes_to_send().endswith(b"\r\n\r\nok")
    return server


def test_idle_server_keeps_its_state_in_slots(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    server = serve_one(http1_server_factory)
    # Slots all the way up: no instance dict at all.
    assert not hasattr(server, "__dict__")
    # Nothing the peer sent ahead, so no queue for it.
    assert getattr(server, "_backlog", None) is None
    assert getattr(server, "_ahead_sizes", None) is None


def test_idle_client_keeps_its_state_in_slots(
    http1_client_factory: HTTP1FactoryMaker,
) -> None:
    client = http1_client_factory()()
    stream_id = client.get_available_stream_id()
    client.submit_headers(
        stream_id,
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"a"),
            (b":path", b"/"),
        ],
        end_stream=True,
    )
    client.bytes_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    while client.next_event() is not None:
        pass
    assert client.is_available()
    assert not hasattr(client, "__dict__")


def test_idle_server_protocol_is_small(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    count = 200
    serve_one(http1_server_factory)  # caches warm
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept = [serve_one(http1_server_factory) for _ in range(count)]
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # Measured: about 1.3 KiB (h11, whose own state is half of it) and
    # 1.5 KiB (httptools, whose parser is 0.9 KiB); a deque or an instance
    # dictionary more would pass 2 KiB.
    assert grown / count < 2048
    assert len(kept) == count


def test_many_events_from_one_read_come_out_in_order(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    server = http1_server_factory()()
    chunks = b"".join(b"1\r\n%c\r\n" % (65 + i % 26) for i in range(5000))
    server.bytes_received(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    head = server.next_event()
    assert isinstance(head, HeadersReceived) and not head.end_stream
    body = b""
    ended = False
    for _ in range(10_000):
        event = server.next_event()
        if event is None:
            break
        assert isinstance(event, DataReceived) and not ended
        body += event.data
        ended = event.end_stream
    assert ended
    assert body == bytes(65 + i % 26 for i in range(5000))
    assert server.next_event() is None


def test_end_of_request_flags_the_queued_head(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    server = http1_server_factory()()
    # The head and the end of the request are parsed from one read: the
    # flag goes on the head still queued.
    server.bytes_received(REQUEST)
    events = []
    while (event := server.next_event()) is not None:
        events.append(event)
    assert len(events) == 1
    assert isinstance(events[0], HeadersReceived) and events[0].end_stream


def test_event_taken_before_the_end_is_not_changed(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    server = http1_server_factory()()
    server.bytes_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
    head = server.next_event()
    assert isinstance(head, HeadersReceived) and not head.end_stream
    server.bytes_received(b"ok")
    assert server.next_event() == DataReceived(1, b"ok", end_stream=True)
    # The event handed out earlier was not changed afterwards.
    assert not head.end_stream


@pytest.mark.parametrize(
    ("fields", "block"),
    [
        (
            [(b"host", b"h"), (b"accept", b"*/*")],
            [(b":authority", b"h"), (b":path", b"/p"), (b"accept", b"*/*")],
        ),
        (
            [(b"accept", b"*/*"), (b"host", b"h"), (b"x", b"1")],
            [
                (b":authority", b"h"),
                (b":path", b"/p"),
                (b"accept", b"*/*"),
                (b"x", b"1"),
            ],
        ),
        # Two Host fields (refused before this by the checks) and none: the
        # general path, the first one wins.
        (
            [(b"host", b"h"), (b"host", b"i")],
            [(b":authority", b"h"), (b":path", b"/p")],
        ),
        ([(b"accept", b"*/*")], [(b":path", b"/p"), (b"accept", b"*/*")]),
    ],
)
def test_request_block_origin_form(
    fields: list[tuple[bytes, bytes]], block: list[tuple[bytes, bytes]]
) -> None:
    assert request_block(b"GET", b"/p", fields, b"https") == (
        (b":method", b"GET"),
        (b":scheme", b"https"),
        *block,
    )


def test_request_block_other_forms_unchanged() -> None:
    fields = [(b"host", b"h")]
    assert request_block(b"GET", b"http://a:1/x", fields, b"http") == (
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"a:1"),
        (b":path", b"/x"),
    )
    assert request_block(b"CONNECT", b"a:443", fields, b"http") == (
        (b":method", b"CONNECT"),
        (b":authority", b"a:443"),
    )


def plan(headers: list[tuple[bytes, bytes]], end_stream: bool = False) -> object:
    return plan_response_head(
        headers, end_stream, request_method=b"GET", peer_version=b"1.1", close=False
    )


@pytest.mark.parametrize(
    ("headers", "complaint"),
    [
        ([(b"x", b"1"), (b":status", b"200")], "after regular fields"),
        ([(b":status", b"200"), (b":path", b"/")], "is not allowed here"),
        ([(b":status", b"200"), (b":status", b"204")], "repeated"),
        ([(b"content-length", b"1")], "a response needs :status"),
        ([(b":status", b"20")], "bad :status"),
        ([(b":status", b"600")], "bad :status"),
        ([(b":status", b"2x0")], "bad :status"),
        # Pseudo-header errors come before framing errors.
        ([(b":status", b"200"), (b"content-length", b"x"), (b":a", b"")], "after"),
        # :status errors come before framing errors too.
        ([(b":status", b"099"), (b"content-length", b"x")], "bad :status"),
        ([(b":status", b"200"), (b"content-length", b"x")], "bad Content-Length"),
        ([(b":status", b"200"), (b"content-length", b"1, 2")], "bad Content-Length"),
        (
            [
                (b":status", b"200"),
                (b"content-length", b"1"),
                (b"transfer-encoding", b"chunked"),
            ],
            "Content-Length and Transfer-Encoding together",
        ),
    ],
)
def test_response_head_refusals(
    headers: list[tuple[bytes, bytes]], complaint: str
) -> None:
    with pytest.raises(LocalProtocolError, match=complaint):
        plan(headers)


def test_response_head_lengths() -> None:
    status, reason, fields, body = plan_response_head(
        [(b":status", b"200"), (b"Content-Length", b" 7 ")],
        False,
        request_method=b"GET",
        peer_version=b"1.1",
        close=False,
    )
    assert (status, reason, fields) == (200, b"OK", [(b"Content-Length", b" 7 ")])
    assert body is not None and body.remaining == 7
    # The same length repeated is one length (RFC 9110 §8.6).
    *_, body = plan_response_head(
        [(b":status", b"200"), (b"content-length", b"3, 3")],
        False,
        request_method=b"GET",
        peer_version=b"1.1",
        close=False,
    )
    assert body is not None and body.remaining == 3
    # A 1xx is not framed: a bad length there is h11's to refuse.
    status, _, _, body = plan_response_head(
        [(b":status", b"103"), (b"content-length", b"x")],
        False,
        request_method=b"GET",
        peer_version=b"1.1",
        close=False,
    )
    assert status == 103 and body is None


def test_events_taken_are_not_kept_while_more_arrive(
    http1_server_factory: HTTP1FactoryMaker,
) -> None:
    server = http1_server_factory()()
    server.bytes_received(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n-\r\n"
    )
    assert isinstance(server.next_event(), HeadersReceived)
    # One piece stays queued while each read adds one and the caller takes
    # one: the queue is never empty, yet what was taken is let go.
    taken = b""
    for i in range(2000):
        server.bytes_received(b"1\r\n%c\r\n" % (65 + i % 26))
        event = server.next_event()
        assert isinstance(event, DataReceived)
        taken += event.data
        queued: list[object] = server._events  # type: ignore[attr-defined]
        assert 0 < len(queued) <= 130
    server.bytes_received(b"0\r\n\r\n")
    while (event := server.next_event()) is not None:
        assert isinstance(event, DataReceived)
        taken += event.data
    assert taken == b"-" + bytes(65 + i % 26 for i in range(2000))
