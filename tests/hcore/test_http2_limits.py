"""HTTP/2 protections: concurrency, rapid reset, header size, malformed input."""

from __future__ import annotations

import pytest
from hyperframe.frame import RstStreamFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcore import LocalProtocolError
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    InformationalResponseReceived,
    StreamResetReceived,
    StreamResetSent,
    TrailersReceived,
)
from hcore.protocols.http2 import H2ClientProtocol, H2ServerProtocol
from tests.hcore.http2_helpers import (
    PREFACE,
    RawClient,
    RawServer,
    goaways,
    h2_pair,
    request,
    resets,
)
from tests.hcore.pairs import TCPPair, drain

OK = [(b":status", b"200")]
PROTOCOL_ERROR = 0x1
REFUSED = 0x7
CANCEL = 0x8
CALM = 0xB
RAPID = "too many streams abandoned by the peer (rapid reset)"


# -- concurrency ---------------------------------------------------------------


def test_concurrency_limit_is_reflected_in_is_available() -> None:
    pair = h2_pair(server=H2ServerProtocol(max_concurrent_streams=2))
    client, server = pair.client, pair.server
    for _ in range(2):
        client.submit_headers(
            client.get_available_stream_id(), request(), end_stream=True
        )
    assert not client.is_available()
    with pytest.raises(LocalProtocolError):
        client.get_available_stream_id()
    with pytest.raises(LocalProtocolError, match="limit"):
        client.submit_headers(5, request(), end_stream=True)
    pair.pump()
    assert [type(e) for e in pair.server_events()] == [HeadersReceived] * 2
    assert not server.is_available()
    server.submit_headers(1, OK, end_stream=True)
    assert server.is_available()
    pair.pump()
    assert pair.client_events() == [HeadersReceived(1, OK, end_stream=True)]
    assert client.is_available()
    assert client.get_available_stream_id() == 5


def test_streams_over_the_limit_are_refused() -> None:
    # Before the server's SETTINGS arrive the client may open any number.
    pair = TCPPair(H2ClientProtocol(), H2ServerProtocol(max_concurrent_streams=2))
    for sid in (1, 3, 5, 7):
        pair.client.submit_headers(sid, request(), end_stream=True)
    pair.pump()
    assert pair.server_events() == [
        HeadersReceived(1, request(), end_stream=True),
        HeadersReceived(3, request(), end_stream=True),
    ]
    assert pair.client_events() == [
        StreamResetReceived(5, REFUSED),
        StreamResetReceived(7, REFUSED),
    ]
    assert not pair.server.has_expired()
    # A GOAWAY names the last stream taken on, not the refused ones.
    pair.server.submit_close()
    assert goaways(pair.server.bytes_to_send()) == [(3, 0)]


def test_refusals_after_settings_were_acknowledged_count_as_abuse() -> None:
    server = H2ServerProtocol(max_concurrent_streams=1, max_rapid_resets=3)
    raw = RawClient(server)
    raw.start()
    for sid in range(1, 10, 2):
        raw.send(*raw.headers(sid, request(), end_stream=False))
    events = drain(server)
    assert events == [
        HeadersReceived(1, request()),
        ConnectionTerminated(CALM, RAPID),
    ]
    frames = raw.read()
    assert resets(frames) == [(3, REFUSED), (5, REFUSED), (7, REFUSED), (9, REFUSED)]
    assert goaways(b"".join(f.serialize() for f in frames)) == [(1, CALM)]


# -- rapid reset ---------------------------------------------------------------


def test_rapid_reset_gets_enhance_your_calm() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    for n in range(101):
        sid = client.get_available_stream_id()
        client.submit_headers(sid, request(), end_stream=True)
        client.submit_stream_reset(sid, CANCEL)
        pair.pump()
        events = pair.server_events()
        assert events[:2] == [
            HeadersReceived(sid, request(), end_stream=True),
            StreamResetReceived(sid, CANCEL),
        ]
        if n < 100:
            assert len(events) == 2
    assert events[2:] == [ConnectionTerminated(CALM, RAPID)]
    assert server.has_expired()
    assert pair.client_events() == [
        GoawayReceived(201, CALM, ()),
        ConnectionTerminated(CALM, "the peer closed the connection with error 0xb"),
    ]


def test_cancelling_half_the_requests_is_allowed() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    for n in range(300):
        sid = client.get_available_stream_id()
        client.submit_headers(sid, request(), end_stream=True)
        if n % 2:
            client.submit_stream_reset(sid, CANCEL)
        pair.pump()
        for event in pair.server_events():
            if isinstance(event, HeadersReceived) and not n % 2:
                server.submit_headers(event.stream_id, OK, end_stream=True)
        pair.pump()
        pair.client_events()
    assert not server.has_expired()


def test_a_browser_cancelling_everything_in_flight_is_allowed() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    ids = []
    for _ in range(100):
        ids.append(client.get_available_stream_id())
        client.submit_headers(ids[-1], request(), end_stream=True)
    pair.pump()
    pair.server_events()
    for sid in ids:
        client.submit_stream_reset(sid, CANCEL)
    pair.pump()
    assert len(pair.server_events()) == 100
    assert not server.has_expired()
    # Resets after the response was complete are not counted at all.
    for _ in range(150):
        sid = client.get_available_stream_id()
        client.submit_headers(sid, request(b"/", b"POST"))
        pair.pump()
        pair.server_events()
        server.submit_headers(sid, OK, end_stream=True)
        pair.pump()
        client.submit_stream_reset(sid, CANCEL)
        pair.pump()
        assert pair.server_events() == [StreamResetReceived(sid, CANCEL)]
    assert not server.has_expired()


def test_headers_and_resets_in_one_read() -> None:
    server = H2ServerProtocol(max_rapid_resets=10, rapid_reset_window=20)
    raw = RawClient(server)
    raw.start()
    flood = b"".join(
        b"".join(f.serialize() for f in raw.headers(sid, request()))
        + RstStreamFrame(sid, error_code=CANCEL).serialize()
        for sid in range(1, 61, 2)
    )
    raw.send(flood)
    events = drain(server)
    assert events[-1] == ConnectionTerminated(CALM, RAPID)
    assert len(events) == 2 * 11 + 1
    assert goaways(server.bytes_to_send()) == [(21, CALM)]


# -- header list size ------------------------------------------------------------


def test_header_block_over_the_advertised_size_resets_the_stream() -> None:
    pair = h2_pair()
    big = b"v" * 70_000  # over 64 KiB, under twice that
    pair.client.submit_headers(
        1, request(b"/", b"GET", (b"x-big", big)), end_stream=True
    )
    pair.pump()
    assert pair.server_events() == [StreamResetSent(1, PROTOCOL_ERROR)]
    assert pair.client_events() == [StreamResetReceived(1, PROTOCOL_ERROR)]
    # The connection carries on.
    pair.client.submit_headers(3, request(), end_stream=True)
    pair.pump()
    assert pair.server_events() == [HeadersReceived(3, request(), end_stream=True)]


def test_header_block_over_twice_the_size_closes_the_connection() -> None:
    pair = h2_pair(server=H2ServerProtocol(max_header_list_size=4096))
    big = b"v" * 9000
    pair.client.submit_headers(
        1, request(b"/", b"GET", (b"x-big", big)), end_stream=True
    )
    pair.pump()
    [terminated] = pair.server_events()
    assert isinstance(terminated, ConnectionTerminated)
    assert terminated.error_code == CALM
    assert pair.client_events() == [
        GoawayReceived(0, CALM, (1,)),
        ConnectionTerminated(CALM, "the peer closed the connection with error 0xb"),
    ]


def test_response_and_trailers_over_the_size_reset_the_stream() -> None:
    pair = h2_pair(client=H2ClientProtocol(max_header_list_size=1000))
    client, server = pair.client, pair.server
    client.submit_headers(1, request(), end_stream=True)
    client.submit_headers(3, request(), end_stream=True)
    pair.pump()
    pair.server_events()
    server.submit_headers(1, [(b":status", b"200"), (b"x-big", b"v" * 1200)])
    server.submit_headers(3, OK)
    server.submit_headers(3, [(b"x-big", b"v" * 1200)], end_stream=True)
    pair.pump()
    assert pair.client_events() == [
        StreamResetSent(1, PROTOCOL_ERROR),
        HeadersReceived(3, OK),
        StreamResetSent(3, PROTOCOL_ERROR),
    ]
    assert pair.server_events() == [StreamResetReceived(1, PROTOCOL_ERROR)]


# -- malformed input -------------------------------------------------------------


BAD_REQUESTS = {
    "upper-case name": [*request(), (b"X-Up", b"1")],
    "space in name": [*request(), (b"x y", b"1")],
    "colon in name": [*request(), (b"x:y", b"1")],
    "empty name": [*request(), (b"", b"1")],
    "newline in value": [*request(), (b"x", b"a\nb")],
    "leading space": [*request(), (b"x", b" a")],
    "connection header": [*request(), (b"connection", b"close")],
    "te gzip": [*request(), (b"te", b"gzip")],
    "no method": request()[1:],
    "empty method": [(b":method", b""), *request()[1:]],
    "no path": request()[:3],
    "empty path": [*request()[:3], (b":path", b"")],
    "unknown pseudo": [*request(), (b":foo", b"1")],
    "response pseudo": [*request(), (b":status", b"200")],
    "pseudo after field": [*request()[:3], (b"x", b"1"), (b":path", b"/")],
    "repeated pseudo": [*request(), (b":path", b"/again")],
    "connect with path": [
        (b":method", b"CONNECT"),
        (b":authority", b"a:1"),
        (b":path", b"/"),
    ],
    "connect without authority": [(b":method", b"CONNECT")],
    "protocol not enabled": [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        *request()[1:],
    ],
    "host mismatch": [*request(), (b"host", b"other.test")],
}


@pytest.mark.parametrize("headers", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
def test_malformed_request_resets_only_its_stream(
    headers: list[tuple[bytes, bytes]],
) -> None:
    server = H2ServerProtocol()
    raw = RawClient(server)
    raw.start()
    raw.send(
        *raw.headers(1, headers, end_stream=False),
        raw.data(1, b"body", end_stream=True),
    )
    assert drain(server) == [StreamResetSent(1, PROTOCOL_ERROR)]
    # (h2 answers the DATA that followed with another RST_STREAM.)
    assert resets(raw.read())[0] == (1, PROTOCOL_ERROR)
    raw.send(*raw.headers(3, request()))
    assert drain(server) == [HeadersReceived(3, request(), end_stream=True)]
    assert not server.has_expired()


BAD_EXTENDED_CONNECT = {
    "protocol with GET": [
        (b":method", b"GET"),
        (b":protocol", b"websocket"),
        *request()[1:],
    ],
    "no path": [(b":method", b"CONNECT"), (b":protocol", b"ws"), *request()[1:3]],
}


@pytest.mark.parametrize(
    "headers", list(BAD_EXTENDED_CONNECT.values()), ids=list(BAD_EXTENDED_CONNECT)
)
def test_malformed_extended_connect(headers: list[tuple[bytes, bytes]]) -> None:
    server = H2ServerProtocol(enable_connect_protocol=True)
    raw = RawClient(server)
    raw.start()
    raw.send(*raw.headers(1, headers))
    assert drain(server) == [StreamResetSent(1, PROTOCOL_ERROR)]


def test_malformed_trailers_reset_the_stream() -> None:
    server = H2ServerProtocol()
    raw = RawClient(server)
    raw.start()
    raw.send(*raw.headers(1, request(b"/", b"POST"), end_stream=False))
    raw.send(*raw.headers(1, [(b":path", b"/x")], end_stream=True))
    assert drain(server) == [
        HeadersReceived(1, request(b"/", b"POST")),
        StreamResetSent(1, PROTOCOL_ERROR),
    ]
    assert resets(raw.read()) == [(1, PROTOCOL_ERROR)]


BAD_RESPONSES = {
    "no status": [(b"x", b"1")],
    "bad status": [(b":status", b"20")],
    "status 600": [(b":status", b"600")],
    "request pseudo": [(b":status", b"200"), (b":path", b"/")],
    "upper-case name": [(b":status", b"200"), (b"Server", b"x")],
}


@pytest.mark.parametrize(
    "headers", list(BAD_RESPONSES.values()), ids=list(BAD_RESPONSES)
)
def test_malformed_response_resets_only_its_stream(
    headers: list[tuple[bytes, bytes]],
) -> None:
    client = H2ClientProtocol()
    raw = RawServer(client)
    client.submit_headers(1, request(), end_stream=True)
    client.submit_headers(3, request(), end_stream=True)
    raw.pump()
    raw.respond(1, headers, end_stream=True)
    raw.respond(3, OK, end_stream=True)
    assert drain(client) == [
        StreamResetSent(1, PROTOCOL_ERROR),
        HeadersReceived(3, OK, end_stream=True),
    ]


def test_malformed_informational_response_resets_the_stream() -> None:
    client = H2ClientProtocol()
    raw = RawServer(client)
    client.submit_headers(1, request(), end_stream=True)
    raw.pump()
    raw.respond(1, [(b":status", b"103"), (b"link", b"</x>")])
    # A 101, and a final response already in flight behind it.
    raw.conn.send_headers(1, [(b":status", b"101")])
    raw.conn.send_headers(1, OK, end_stream=True)
    raw.pump()
    assert drain(client) == [
        InformationalResponseReceived(1, [(b":status", b"103"), (b"link", b"</x>")]),
        StreamResetSent(1, PROTOCOL_ERROR),
    ]
    assert not client.has_expired()


def test_events_of_a_stream_reset_in_the_same_read_are_dropped() -> None:
    client = H2ClientProtocol(max_header_list_size=100)
    raw = RawServer(client)
    client.submit_headers(1, request(), end_stream=True)
    raw.pump()
    raw.conn.send_headers(1, [(b":status", b"200"), (b"x", b"v" * 120)])
    raw.conn.send_data(1, b"body")
    raw.conn.send_headers(1, [(b"x-t", b"1")], end_stream=True)
    raw.pump()
    assert drain(client) == [StreamResetSent(1, PROTOCOL_ERROR)]


def test_invalid_content_length_is_a_connection_error() -> None:
    server = H2ServerProtocol()
    raw = RawClient(server)
    raw.start()
    raw.send(*raw.headers(1, [*request(b"/", b"POST"), (b"content-length", b"x")]))
    [terminated] = drain(server)
    assert isinstance(terminated, ConnectionTerminated)
    assert terminated.error_code == PROTOCOL_ERROR
    assert goaways(server.bytes_to_send()) == [(1, PROTOCOL_ERROR)]


def test_garbage_instead_of_preface_gets_goaway_protocol_error() -> None:
    server = H2ServerProtocol()
    server.bytes_to_send()
    server.bytes_received(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    [terminated] = drain(server)
    assert isinstance(terminated, ConnectionTerminated)
    assert terminated.error_code == PROTOCOL_ERROR
    assert goaways(server.bytes_to_send()) == [(0, PROTOCOL_ERROR)]
    assert server.has_expired()
    server.bytes_received(PREFACE)
    assert server.next_event() is None


def test_garbage_frames_get_goaway_protocol_error() -> None:
    pair = h2_pair()
    pair.client.bytes_received(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    [terminated] = drain(pair.client)
    assert isinstance(terminated, ConnectionTerminated)
    assert terminated.error_code == PROTOCOL_ERROR
    assert goaways(pair.client.bytes_to_send()) == [(0, PROTOCOL_ERROR)]


def test_h2_failing_inside_is_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = H2ServerProtocol()

    def broken(data: bytes) -> list[object]:
        raise KeyError("h2 bug")

    monkeypatch.setattr(server._conn, "receive_data", broken)
    server.bytes_received(b"x")
    [terminated] = drain(server)
    assert isinstance(terminated, ConnectionTerminated)
    assert terminated.error_code == 0x2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    garbage=st.binary(min_size=1, max_size=200),
    role=st.sampled_from(["client", "server"]),
)
def test_random_bytes_never_raise(garbage: bytes, role: str) -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(b"/", b"POST"))
    pair.pump()
    target = pair.client if role == "client" else pair.server
    target.bytes_received(garbage)
    events: list[Event] = drain(target)
    target.bytes_received(garbage)
    events += drain(target)
    terminated = [e for e in events if isinstance(e, ConnectionTerminated)]
    if terminated:
        assert events[-1] is terminated[0]
        assert len(terminated) == 1
        assert goaways(target.bytes_to_send())
        assert target.has_expired()
    else:
        assert all(
            isinstance(
                e,
                HeadersReceived
                | DataReceived
                | TrailersReceived
                | StreamResetReceived
                | StreamResetSent
                | GoawayReceived
                | InformationalResponseReceived,
            )
            for e in events
        )
