"""HTTP/1.1 under load and under arbitrary byte splits."""

from __future__ import annotations

import tracemalloc
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    HeadersReceived,
    InformationalResponseReceived,
)
from hcore.protocols.http1 import H11ClientProtocol, H11ServerProtocol
from tests.hcore.http1_helpers import (
    make_pair,
    new_client,
    new_server,
    normalize,
    req,
    resp,
)
from tests.hcore.pairs import Splitter, TCPPair, drain, whole

pytestmark = pytest.mark.usefixtures("http1_helpers_implementation")

CYCLES = 10_000
TRACED = 2_000


def one_cycle(
    pair: TCPPair, client: H11ClientProtocol, server: H11ServerProtocol
) -> None:
    stream_id = client.get_available_stream_id()
    client.submit_headers(
        stream_id, req(b"POST", b"/echo", b"h", (b"content-length", b"4"))
    )
    client.submit_data(stream_id, b"ping", end_stream=True)
    pair.pump()
    events = pair.server_events()
    assert len(events) == 2 and events[1] == DataReceived(stream_id, b"ping", True)
    server.submit_headers(stream_id, resp(b"200", (b"content-length", b"4")))
    server.submit_data(stream_id, b"pong", end_stream=True)
    pair.pump()
    events = pair.client_events()
    assert len(events) == 2 and events[1] == DataReceived(stream_id, b"pong", True)
    pair.wire.clear()  # the test link's log, not the protocols' memory


def internal_sizes(protocol: H11ClientProtocol | H11ServerProtocol) -> tuple[int, ...]:
    return (
        len(protocol._events),
        len(protocol._outgoing),
        # What the parser holds: h11's buffer, or the httptools server's
        # queue of input sent ahead (its client holds none).
        len(protocol._h11.trailing_data[0])
        if hasattr(protocol, "_h11")
        # (None while nothing waits).
        else len(getattr(protocol, "_backlog", None) or ()),
    )


def test_ten_thousand_keep_alive_cycles_in_bounded_memory() -> None:
    pair, client, server = make_pair()
    sizes = []
    for _ in range(CYCLES - TRACED):
        one_cycle(pair, client, server)
        sizes.append(internal_sizes(client) + internal_sizes(server))
    assert set(sizes) == {(0,) * 6}
    # tracemalloc triples the cost of a cycle, so it watches the last ones.
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(TRACED):
            one_cycle(pair, client, server)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.get_available_stream_id() == 2 * CYCLES + 1
    # Nothing accumulates per cycle: a leak of even 8 bytes per cycle would
    # show as 16 KB here.
    assert current - baseline < 12 * 1024
    assert peak - baseline < 64 * 1024
    assert internal_sizes(client) == (0, 0, 0)
    assert internal_sizes(server) == (0, 0, 0)
    assert not client.has_expired() and not server.has_expired()


# -- the same conversation, cut anywhere ----------------------------------------


def splitter(sizes: Sequence[int]) -> Splitter:
    """Cut each transfer into pieces of the given sizes, cycling through them."""

    def split(data: bytes) -> list[bytes]:
        pieces, position, index = [], 0, 0
        while position < len(data):
            size = sizes[index % len(sizes)]
            pieces.append(data[position : position + size])
            position += size
            index += 1
        return pieces

    return split


def conversation(split: Splitter) -> list[tuple[str, list[Event]]]:
    """A scripted client/server conversation; return what each side saw."""
    pair, client, server = make_pair(split)
    seen: list[tuple[str, list[Event]]] = []

    def step() -> None:
        pair.pump()
        seen.append(("server", normalize(pair.server_events())))
        seen.append(("client", normalize(pair.client_events())))

    # 1. GET, Content-Length response.
    client.submit_headers(1, req(b"GET", b"/a", b"h", (b"accept", b"*/*")), True)
    step()
    server.submit_headers(1, resp(b"200", (b"content-length", b"11")))
    server.submit_data(1, b"hello ")
    server.submit_data(1, b"world", end_stream=True)
    step()
    # 2. Chunked both ways, with trailers.
    client.submit_headers(3, req(b"POST", b"/b"))
    client.submit_data(3, b"x" * 300)
    client.submit_headers(3, [(b"x-checksum", b"1")], end_stream=True)
    step()
    server.submit_headers(3, resp(b"200"))
    server.submit_data(3, b"y" * 200)
    server.submit_data(3, b"z")
    server.submit_headers(3, [(b"x-done", b"yes")], end_stream=True)
    step()
    # 3. Expect: 100-continue.
    client.submit_headers(5, req(b"PUT", b"/c", b"h", (b"expect", b"100-continue")))
    step()
    server.submit_headers(5, resp(b"100"))
    step()
    client.submit_data(5, b"payload", end_stream=True)
    step()
    server.submit_headers(5, resp(b"201"), end_stream=True)
    step()
    # 4. HEAD and 204.
    client.submit_headers(7, req(b"HEAD", b"/d"), True)
    step()
    server.submit_headers(7, resp(b"200", (b"content-length", b"99")), end_stream=True)
    step()
    client.submit_headers(9, req(b"DELETE", b"/e"), True)
    step()
    server.submit_headers(9, resp(b"204"), end_stream=True)
    step()
    # 5. CONNECT, then a tunnel both ways, closed by EOF on each side.
    client.submit_headers(11, [(b":method", b"CONNECT"), (b":authority", b"up:443")])
    step()
    server.submit_headers(11, resp(b"200"))
    server.submit_data(11, b"from server")
    step()
    client.submit_data(11, b"\x00\x01" * 50, end_stream=True)
    server.submit_data(11, b"", end_stream=True)
    step()
    client.eof_received()
    server.eof_received()
    step()
    assert client.has_expired() and server.has_expired()
    return seen


def test_conversation_unsplit_is_as_expected() -> None:
    seen = conversation(whole)
    flat = [event for _, events in seen for event in events]
    assert sum(isinstance(e, HeadersReceived) for e in flat) == 12
    assert sum(isinstance(e, InformationalResponseReceived) for e in flat) == 1
    assert seen[-2:] == [
        (
            side,
            [
                DataReceived(11, b"", True),
                ConnectionTerminated(0, "tunnel closed by both sides"),
            ],
        )
        for side in ("server", "client")
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=12))
@example([1])  # byte by byte
def test_conversation_same_events_whatever_the_split(sizes: list[int]) -> None:
    assert conversation(splitter(sizes)) == conversation(whole)


RAW_RESPONSES = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nX-T: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nServer: old\r\n\r\nread until close",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n",  # over 1 KiB: 431
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdEXTRA",  # junk after
)


def client_reads(raw: bytes, split: Splitter) -> list[Event]:
    client = new_client(max_header_size=1024)
    client.submit_headers(1, req(), end_stream=True)
    for piece in split(raw):
        client.bytes_received(piece)
    client.eof_received()
    return [
        ConnectionTerminated(e.error_code) if isinstance(e, ConnectionTerminated) else e
        for e in normalize(drain(client))
    ]


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(RAW_RESPONSES),
    st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=8),
)
def test_client_parses_raw_responses_whatever_the_split(
    raw: bytes, sizes: list[int]
) -> None:
    # Error messages may differ (h11 can spot some errors early), codes not.
    assert client_reads(raw, splitter(sizes)) == client_reads(raw, whole)


RAW_REQUESTS = (
    b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
    b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    b"PUT /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\nde\r\n0\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: h\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nbroken header\r\n\r\n",
    b"GET /1 HTTP/1.0\r\n\r\n",
)


def server_reads(raw: bytes, split: Splitter) -> tuple[list[Event], bytes]:
    server = new_server(max_header_size=1024)
    for piece in split(raw):
        server.bytes_received(piece)
    server.eof_received()
    events: list[Event] = []
    for _ in range(10):  # answer each request as it comes
        new = drain(server)
        events.extend(new)
        heads = [e for e in new if isinstance(e, HeadersReceived)]
        if not heads or server.has_expired():
            break
        server.submit_headers(heads[0].stream_id, resp(), end_stream=True)
    events.extend(drain(server))
    codes = [
        ConnectionTerminated(e.error_code) if isinstance(e, ConnectionTerminated) else e
        for e in normalize(events)
    ]
    return codes, server.bytes_to_send()


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(RAW_REQUESTS),
    st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=8),
)
def test_server_parses_raw_requests_whatever_the_split(
    raw: bytes, sizes: list[int]
) -> None:
    assert server_reads(raw, splitter(sizes)) == server_reads(raw, whole)


def test_raw_requests_unsplit() -> None:
    events, out = server_reads(RAW_REQUESTS[0], whole)
    heads = [e for e in events if isinstance(e, HeadersReceived)]
    assert [h.stream_id for h in heads] == [1, 3, 5]
    assert out.count(b"HTTP/1.1 200 OK") == 3
    events, out = server_reads(RAW_REQUESTS[2], whole)
    assert events[-1] == ConnectionTerminated(400)
    assert out.count(b"HTTP/1.1 200 OK") == 1 and b"400 Bad Request" in out


PREFIXES = (
    b"",
    b"GET / HTTP/1.1\r\nHost: h\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(PREFIXES),
    st.binary(max_size=300),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=6),
    st.booleans(),
)
def test_random_input_never_raises(
    prefix: bytes, garbage: bytes, sizes: list[int], eof: bool
) -> None:
    client = new_client(max_header_size=256)
    client.submit_headers(1, req(b"POST"))
    for protocol in (new_server(max_header_size=256), client):
        for piece in splitter(sizes)(prefix + garbage):
            protocol.bytes_received(piece)
        if eof:
            protocol.eof_received()
        events = drain(protocol)
        ends = [i for i, e in enumerate(events) if isinstance(e, ConnectionTerminated)]
        assert ends in ([], [len(events) - 1])
        assert protocol.has_expired() == bool(ends)
        protocol.bytes_to_send()
        protocol.connection_lost()
        assert protocol.has_expired()


def test_64_mib_each_way_in_bounded_buffers() -> None:
    pair, client, server = make_pair()
    chunk = bytes(range(256)) * 4096  # 1 MiB
    total = 64 * len(chunk)
    client.submit_headers(1, req(b"PUT", b"/big"))  # chunked
    server_got = client_got = 0
    largest = 0
    for i in range(64):
        client.submit_data(1, chunk, end_stream=i == 63)
        out = client.bytes_to_send()
        largest = max(largest, len(out))
        server.bytes_received(out)
        for event in drain(server):
            if isinstance(event, DataReceived):
                server_got += len(event.data)
        assert internal_sizes(server)[0] == 0
    assert server_got == total
    server.submit_headers(1, resp(b"200", (b"content-length", str(total).encode())))
    for i in range(64):
        server.submit_data(1, chunk, end_stream=i == 63)
        out = server.bytes_to_send()
        largest = max(largest, len(out))
        client.bytes_received(out)
        for event in drain(client):
            if isinstance(event, DataReceived):
                client_got += len(event.data)
        assert internal_sizes(client) == (0, 0, 0)
    assert client_got == total
    # Never more than one write (plus framing) held at a time.
    assert largest <= len(chunk) + 1024
    assert client.is_available() and pair.wire == []
