"""HTTP/1.1 message heads and bodies: pseudo-headers, framing, trailers, 1xx."""

from __future__ import annotations

import pytest

from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    HeadersReceived,
    InformationalResponseReceived,
    TrailersReceived,
)
from hcore.protocols.http1 import HTTP1ServerFactory
from tests.hcore.http1_helpers import (
    body_of,
    feed_server,
    header_value,
    make_pair,
    new_client,
    open_client,
    req,
    resp,
)

pytestmark = pytest.mark.usefixtures("http1_helpers_implementation")

# -- request heads --------------------------------------------------------------


def test_request_pseudo_headers_become_request_line_and_host() -> None:
    pair, client, _server = make_pair()
    client.submit_headers(
        1, req(b"GET", b"/p?q=1", b"example.com", (b"accept", b"*/*")), True
    )
    pair.pump()
    assert pair.wire[0] == (
        "c>s",
        b"GET /p?q=1 HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\n\r\n",
    )
    assert pair.server_events() == [
        HeadersReceived(
            1,
            (
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"example.com"),
                (b":path", b"/p?q=1"),
                (b"accept", b"*/*"),
            ),
            end_stream=True,
        )
    ]


def test_host_field_may_stand_in_for_authority() -> None:
    _, _, wire = open_client(
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"h")]
    )
    assert wire == b"GET / HTTP/1.1\r\nhost: h\r\n\r\n"


def test_same_host_and_authority_sent_once() -> None:
    _, _, wire = open_client(req(b"GET", b"/", b"h", (b"host", b"h")))
    assert wire == b"GET / HTTP/1.1\r\nhost: h\r\n\r\n"


def test_server_header_names_lower_case_and_host_becomes_authority() -> None:
    _, events, _ = feed_server(
        b"GET /x HTTP/1.1\r\nHOST: a.example\r\nX-Mixed-Case: V\r\n\r\n"
    )
    assert events == [
        HeadersReceived(
            1,
            (
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"a.example"),
                (b":path", b"/x"),
                (b"x-mixed-case", b"V"),
            ),
            end_stream=True,
        )
    ]


@pytest.mark.parametrize(
    ("tls_version", "scheme", "expected"),
    [
        (None, None, b"http"),
        ("TLSv1.3", None, b"https"),
        (None, "https", b"https"),
        ("TLSv1.2", "http", b"http"),
    ],
)
def test_server_scheme(
    tls_version: str | None, scheme: str | None, expected: bytes
) -> None:
    server = HTTP1ServerFactory(scheme=scheme)(tls_version=tls_version)
    _, events, _ = feed_server(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", server)
    assert isinstance(events[0], HeadersReceived)
    assert events[0].headers[1] == (b":scheme", expected)


@pytest.mark.parametrize(
    ("target", "scheme", "authority", "path"),
    [
        (b"http://other.example:8080/a?b", b"http", b"other.example:8080", b"/a?b"),
        (b"HTTPS://x.example", b"https", b"x.example", b"/"),
        (b"http://x.example?q", b"http", b"x.example", b"/?q"),
    ],
)
def test_server_absolute_form_target(
    target: bytes, scheme: bytes, authority: bytes, path: bytes
) -> None:
    # RFC 9112 §3.2.2: the target's authority wins over Host.
    _, events, _ = feed_server(b"GET " + target + b" HTTP/1.1\r\nHost: ignored\r\n\r\n")
    assert isinstance(events[0], HeadersReceived)
    assert events[0].headers == (
        (b":method", b"GET"),
        (b":scheme", scheme),
        (b":authority", authority),
        (b":path", path),
    )


def test_client_absolute_form_for_proxies() -> None:
    _, _, wire = open_client(req(b"GET", b"http://example.com/x", b"example.com"))
    assert wire.startswith(
        b"GET http://example.com/x HTTP/1.1\r\nhost: example.com\r\n"
    )


def test_connect_authority_form_both_ways() -> None:
    pair, client, _ = make_pair()
    client.submit_headers(
        1, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")]
    )
    pair.pump()
    assert (
        pair.wire[0][1]
        == b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n"
    )
    assert pair.server_events() == [
        HeadersReceived(
            1, ((b":method", b"CONNECT"), (b":authority", b"example.com:443"))
        )
    ]


@pytest.mark.parametrize("target", [b"[2001:db8::1]:443", b"127.0.0.1:8080"])
def test_server_connect_ip_targets(target: bytes) -> None:
    _, events, _ = feed_server(b"CONNECT " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert events == [
        HeadersReceived(1, ((b":method", b"CONNECT"), (b":authority", target)))
    ]


def test_options_asterisk_form_both_ways() -> None:
    pair, client, _ = make_pair()
    client.submit_headers(1, req(b"OPTIONS", b"*"), end_stream=True)
    pair.pump()
    assert pair.wire[0][1].startswith(b"OPTIONS * HTTP/1.1\r\n")
    [event] = pair.server_events()
    assert isinstance(event, HeadersReceived)
    assert event.headers[3] == (b":path", b"*")


def test_http10_request_without_host_has_no_authority() -> None:
    _, events, _ = feed_server(b"GET / HTTP/1.0\r\n\r\n")
    assert events == [
        HeadersReceived(
            1, ((b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")), True
        )
    ]


# -- response heads -------------------------------------------------------------


def test_response_status_line_and_status_pseudo_header() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, req(), end_stream=True)
    pair.pump()
    pair.server_events()
    server.submit_headers(1, resp(b"404", (b"Server", b"t")), end_stream=True)
    pair.pump()
    assert pair.wire[1][1] == (
        b"HTTP/1.1 404 Not Found\r\nServer: t\r\ncontent-length: 0\r\n\r\n"
    )
    assert pair.client_events() == [
        HeadersReceived(
            1,
            ((b":status", b"404"), (b"server", b"t"), (b"content-length", b"0")),
            end_stream=True,
        )
    ]


def test_unknown_status_code_has_empty_reason() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, req(), end_stream=True)
    pair.pump()
    server.submit_headers(1, resp(b"599"), end_stream=True)
    pair.pump()
    assert pair.wire[1][1].startswith(b"HTTP/1.1 599 \r\n")
    assert isinstance(pair.client_events()[0], HeadersReceived)


# -- bodies ---------------------------------------------------------------------


def test_content_length_bodies_both_ways() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, req(b"PUT", b"/u", b"h", (b"content-length", b"10")))
    client.submit_data(1, b"01234")
    client.submit_data(1, b"56789", end_stream=True)
    pair.pump()
    assert b"transfer-encoding" not in pair.wire[0][1].lower()
    events = pair.server_events()
    assert body_of(events, 1) == b"0123456789"
    assert isinstance(events[-1], DataReceived) and events[-1].end_stream
    server.submit_headers(1, resp(b"200", (b"content-length", b"3")))
    server.submit_data(1, b"abc", end_stream=True)
    pair.pump()
    events = pair.client_events()
    assert body_of(events, 1) == b"abc"
    assert events[-1] == DataReceived(1, b"abc", end_stream=True)
    assert client.is_available()


def test_chunked_bodies_both_ways_when_no_length() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, req(b"POST", b"/"))
    client.submit_data(1, b"abc")
    client.submit_data(1, b"", end_stream=True)
    pair.pump()
    assert pair.wire[0][1].endswith(
        b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert body_of(pair.server_events(), 1) == b"abc"
    server.submit_headers(1, resp())
    server.submit_data(1, b"xyz")
    server.submit_data(1, b"", end_stream=True)
    pair.pump()
    assert b"Transfer-Encoding: chunked" in pair.wire[1][1]
    events = pair.client_events()
    assert body_of(events, 1) == b"xyz"
    assert isinstance(events[-1], DataReceived) and events[-1].end_stream


def test_post_without_body_says_content_length_zero() -> None:
    _, _, wire = open_client(req(b"POST"), end_stream=True)
    assert wire.endswith(b"content-length: 0\r\n\r\n")


def test_explicit_zero_length_left_open_is_ended_by_empty_data() -> None:
    client, stream_id, wire = open_client(
        req(b"POST", b"/", b"h", (b"content-length", b"0")), end_stream=False
    )
    assert b"chunked" not in wire
    client.submit_data(stream_id, b"", end_stream=True)
    assert client.bytes_to_send() == b""


def test_response_read_until_close() -> None:
    client, _, _ = open_client()
    client.bytes_received(b"HTTP/1.1 200 OK\r\n\r\nabc")
    client.bytes_received(b"def")
    client.eof_received()
    events = [client.next_event() for _ in range(5)]
    assert events == [
        HeadersReceived(1, ((b":status", b"200"),)),
        DataReceived(1, b"abc"),
        DataReceived(1, b"def", end_stream=True),
        ConnectionTerminated(0, "connection closed by the peer"),
        None,
    ]
    assert client.has_expired()


def test_head_and_204_responses_have_no_body() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, req(b"HEAD"), end_stream=True)
    pair.pump()
    server.submit_headers(
        1, resp(b"200", (b"content-length", b"1234")), end_stream=True
    )
    pair.pump()
    assert pair.client_events() == [
        HeadersReceived(1, ((b":status", b"200"), (b"content-length", b"1234")), True)
    ]
    client.submit_headers(3, req(), end_stream=True)
    pair.pump()
    server.submit_headers(3, resp(b"204"))
    server.submit_data(3, b"", end_stream=True)
    pair.pump()
    assert pair.client_events() == [HeadersReceived(3, ((b":status", b"204"),), True)]


def test_trailers_both_ways() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, req(b"POST"))
    client.submit_data(1, b"q")
    client.submit_headers(1, [(b"x-req-sum", b"1")], end_stream=True)
    pair.pump()
    assert pair.server_events()[-1] == TrailersReceived(1, ((b"x-req-sum", b"1"),))
    server.submit_headers(1, resp(b"200", (b"trailer", b"x-sum")))
    server.submit_data(1, b"body")
    server.submit_headers(1, [(b"x-sum", b"abc")], end_stream=True)
    pair.pump()
    assert pair.wire[-1][1].endswith(b"4\r\nbody\r\n0\r\nx-sum: abc\r\n\r\n")
    events = pair.client_events()
    assert body_of(events, 1) == b"body"
    assert events[-1] == TrailersReceived(1, ((b"x-sum", b"abc"),))
    assert client.is_available()


def test_expect_100_continue() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, req(b"POST", b"/up", b"h", (b"expect", b"100-continue")))
    pair.pump()
    [head] = pair.server_events()
    assert isinstance(head, HeadersReceived)
    assert header_value(head.headers, b"expect") == b"100-continue"
    server.submit_headers(1, resp(b"100"))
    pair.pump()
    assert pair.wire[-1][1] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert pair.client_events() == [
        InformationalResponseReceived(1, ((b":status", b"100"),))
    ]
    client.submit_data(1, b"payload", end_stream=True)
    pair.pump()
    assert body_of(pair.server_events(), 1) == b"payload"
    server.submit_headers(1, resp(b"201"), end_stream=True)
    pair.pump()
    assert pair.client_events() == [
        HeadersReceived(1, ((b":status", b"201"), (b"content-length", b"0")), True)
    ]


def test_early_hints_then_response() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, req(), end_stream=True)
    pair.pump()
    server.submit_headers(1, resp(b"103", (b"link", b"</s.css>; rel=preload")))
    server.submit_headers(1, resp(b"200"), end_stream=True)
    pair.pump()
    assert pair.client_events() == [
        InformationalResponseReceived(
            1, ((b":status", b"103"), (b"link", b"</s.css>; rel=preload"))
        ),
        HeadersReceived(1, ((b":status", b"200"), (b"content-length", b"0")), True),
    ]


def test_early_response_while_request_body_still_sent() -> None:
    # The server may answer before the request ends; the exchange ends when
    # both are complete, and the connection stays usable.
    pair, client, server = make_pair()
    client.submit_headers(1, req(b"POST"))
    client.submit_data(1, b"part")
    pair.pump()
    assert body_of(pair.server_events(), 1) == b"part"
    server.submit_headers(1, resp(b"200"), end_stream=True)
    pair.pump()
    assert pair.client_events()[0] == HeadersReceived(
        1, ((b":status", b"200"), (b"content-length", b"0")), True
    )
    assert not client.is_available()
    client.submit_data(1, b"", end_stream=True)
    pair.pump()
    assert pair.server_events()[-1] == DataReceived(1, b"", end_stream=True)
    assert client.is_available() and client.get_available_stream_id() == 3


def test_http10_client_gets_close_delimited_body() -> None:
    server, events, _ = feed_server(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(events[0], HeadersReceived)
    server.submit_headers(1, resp())
    server.submit_data(1, b"old", end_stream=True)
    out = server.bytes_to_send()
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"chunked" not in out.lower() and b"connection: close" in out.lower()
    assert out.endswith(b"\r\n\r\nold")
    # HTTP/1.0: one exchange per connection.
    assert server.next_event() == ConnectionTerminated(
        0, "connection closed after the exchange (Connection: close)"
    )
    assert server.has_expired()


def test_http10_keep_alive_request_still_gets_one_exchange() -> None:
    # h11 never keeps an HTTP/1.0 connection alive; the response says so.
    server, events, _ = feed_server(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert isinstance(events[0], HeadersReceived)
    server.submit_headers(1, resp(b"200", (b"content-length", b"2")))
    server.submit_data(1, b"ok", end_stream=True)
    out = server.bytes_to_send()
    assert b"connection: close" in out.lower() and out.endswith(b"\r\n\r\nok")
    assert server.has_expired()


def test_http10_response_to_client_disables_keep_alive() -> None:
    client, _, _ = open_client()
    client.bytes_received(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    events = [client.next_event() for _ in range(3)]
    assert events[0] == HeadersReceived(
        1, ((b":status", b"200"), (b"content-length", b"2"))
    )
    assert events[1] == DataReceived(1, b"ok", end_stream=True)
    assert isinstance(events[2], ConnectionTerminated) and events[2].error_code == 0
    assert client.has_expired() and not client.is_available()


def test_client_request_with_chunked_field_given() -> None:
    client, stream_id, wire = open_client(
        req(b"POST", b"/", b"h", (b"transfer-encoding", b"chunked")), end_stream=False
    )
    assert wire.count(b"chunked") == 1
    client.submit_data(stream_id, b"z", end_stream=True)
    assert client.bytes_to_send() == b"1\r\nz\r\n0\r\n\r\n"


def test_new_client_has_nothing_to_send() -> None:
    assert new_client().bytes_to_send() == b""
