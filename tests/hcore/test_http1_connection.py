"""HTTP/1.1 connection management: keep-alive, pipelining, close, reset, EOF."""

from __future__ import annotations

import pytest

from hcore import HTTP1_ERROR_CODES, LocalProtocolError
from hcore.events import ConnectionTerminated, DataReceived, HeadersReceived
from hcore.protocols import HTTPOverTCPProtocol
from hcore.protocols.http1 import H11ClientProtocol, H11ServerProtocol
from tests.hcore.http1_helpers import (
    body_of,
    feed_server,
    header_value,
    make_pair,
    new_client,
    new_server,
    open_client,
    req,
    resp,
)
from tests.hcore.pairs import TCPPair, drain

pytestmark = pytest.mark.usefixtures("http1_helpers_implementation")


def exchange(
    pair: TCPPair,
    client: H11ClientProtocol,
    server: H11ServerProtocol,
    request_extra: tuple[tuple[bytes, bytes], ...] = (),
    response_extra: tuple[tuple[bytes, bytes], ...] = (),
) -> int:
    """Run one GET with a small response body; return its stream id."""
    stream_id = client.get_available_stream_id()
    client.submit_headers(stream_id, req(b"GET", b"/", b"h", *request_extra), True)
    pair.pump()
    assert pair.server_events()[0] == HeadersReceived(
        stream_id, tuple(req(b"GET", b"/", b"h", *request_extra)), True
    )
    server.submit_headers(
        stream_id, resp(b"200", (b"content-length", b"2"), *response_extra)
    )
    server.submit_data(stream_id, b"ok", end_stream=True)
    pair.pump()
    assert body_of(pair.client_events(), stream_id) == b"ok"
    return stream_id


def test_properties() -> None:
    for protocol in (new_client(), new_server()):
        assert isinstance(protocol, HTTPOverTCPProtocol)
        assert protocol.http_version == "1.1"
        assert protocol.multiplexed is False
        assert protocol.error_codes is HTTP1_ERROR_CODES
        assert protocol.pending_data_size(1) == 0
        assert protocol.next_event() is None
        assert not protocol.has_expired()


def test_keep_alive_stream_ids_and_availability() -> None:
    pair, client, server = make_pair()
    for expected in (1, 3, 5, 7):
        assert client.is_available()
        assert client.get_available_stream_id() == expected
        assert client.get_available_stream_id() == expected  # stable until used
        assert exchange(pair, client, server) == expected
    assert not client.has_expired() and not server.has_expired()


def test_client_not_available_during_exchange() -> None:
    client, _, _ = open_client()
    assert not client.is_available()
    with pytest.raises(LocalProtocolError):
        client.get_available_stream_id()
    # A second request while busy is refused and changes nothing.
    with pytest.raises(LocalProtocolError):
        client.submit_headers(3, req(), end_stream=True)
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, req(), end_stream=True)
    client.bytes_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert drain(client)[0] == HeadersReceived(
        1, ((b":status", b"200"), (b"content-length", b"0")), True
    )
    assert client.get_available_stream_id() == 3


def test_server_never_opens_streams() -> None:
    server = new_server()
    assert not server.is_available()
    with pytest.raises(LocalProtocolError):
        server.get_available_stream_id()


def test_server_answers_pipelined_requests_in_order() -> None:
    server, events, out = feed_server(
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx"
        b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert out == b""
    assert [e.headers[3] for e in events if isinstance(e, HeadersReceived)] == [
        (b":path", b"/1")
    ]
    for stream_id, path in ((1, b"/1"), (3, b"/2"), (5, b"/3")):
        if stream_id != 1:
            events = drain(server)
            assert isinstance(events[0], HeadersReceived)
            assert events[0].stream_id == stream_id
            assert events[0].headers[3] == (b":path", path)
        server.submit_headers(stream_id, resp(b"200", (b"content-length", b"1")))
        server.submit_data(stream_id, path[-1:], end_stream=True)
    out = server.bytes_to_send()
    assert out.count(b"HTTP/1.1 200 OK") == 3
    # Answered in order: bodies "1", "2", "3".
    assert [part[:1] for part in out.split(b"\r\n\r\n")[1:]] == [b"1", b"2", b"3"]
    assert drain(server) == []


def test_pipelined_bytes_are_bounded() -> None:
    server = new_server(max_pipelined_size=100)
    server.bytes_received(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert len(drain(server)) == 1
    request = b"GET /n HTTP/1.1\r\nHost: h\r\n\r\n"
    for _ in range(3):
        server.bytes_received(request)
    assert drain(server) == []  # 87 bytes held: within the bound
    server.bytes_received(request)  # 116 > 100: reading stops
    server.bytes_received(request * 1000)  # dropped, not buffered
    assert drain(server) == []
    assert not server.has_expired()
    server.submit_headers(1, resp(), end_stream=True)
    out = server.bytes_to_send()
    assert b"connection: close" in out.lower()
    assert drain(server) == [
        ConnectionTerminated(
            429, "the peer sent more than 100 bytes ahead of the current exchange"
        )
    ]
    assert server.has_expired()


def test_pipelined_bytes_bound_hit_in_one_read() -> None:
    server = new_server(max_pipelined_size=100)
    server.bytes_received(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" + b"x" * 500)
    assert len(drain(server)) == 1
    server.submit_headers(1, resp(b"200", (b"content-length", b"1")))
    server.submit_data(1, b"!", end_stream=True)
    assert b"connection: close" in server.bytes_to_send().lower()
    [event] = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 429


def test_request_connection_close() -> None:
    pair, client, server = make_pair()
    exchange(pair, client, server, request_extra=((b"connection", b"close"),))
    assert b"Connection: close" in pair.wire[-1][1]
    assert client.has_expired() and not client.is_available()
    assert server.has_expired()
    assert drain(server) == [
        ConnectionTerminated(
            0, "connection closed after the exchange (Connection: close)"
        )
    ]


def test_response_connection_close() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, req(), end_stream=True)
    pair.pump()
    pair.server_events()
    server.submit_headers(1, resp(b"200", (b"connection", b"close")))
    assert not server.has_expired()  # the last exchange runs to its end
    server.submit_data(1, b"bye", end_stream=True)
    pair.pump()
    assert server.has_expired() and client.has_expired()
    events = pair.client_events()
    assert body_of(events, 1) == b"bye"
    assert events[-1] == ConnectionTerminated(
        0, "connection closed after the exchange (Connection: close)"
    )


def test_client_submit_close_idle_and_busy() -> None:
    client = new_client()
    client.submit_close()
    assert client.has_expired()
    assert drain(client) == [ConnectionTerminated(0, "connection closed by this side")]
    client.submit_close()  # nothing more
    assert drain(client) == []
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, req(), True)

    client, _, _ = open_client()
    client.submit_close(HTTP1_ERROR_CODES.refused_stream)
    assert not client.has_expired() and not client.is_available()
    client.bytes_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert drain(client)[-1] == ConnectionTerminated(
        503, "connection closed by this side"
    )
    assert client.has_expired()


def test_server_submit_close_adds_connection_close_or_closes_now() -> None:
    server = new_server()
    server.submit_close()
    assert server.has_expired()
    assert drain(server) == [ConnectionTerminated(0, "connection closed by this side")]

    server, _, _ = feed_server(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    server.submit_close()
    server.submit_headers(1, resp(), end_stream=True)
    assert b"connection: close" in server.bytes_to_send().lower()
    assert drain(server) == [ConnectionTerminated(0, "connection closed by this side")]


def test_server_submit_close_after_response_started() -> None:
    server, _, _ = feed_server(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\n")
    server.submit_headers(1, resp())
    server.submit_close()
    assert not server.has_expired()
    server.submit_data(1, b"x", end_stream=True)
    # The pipelined request is not started; the connection ends.
    assert drain(server) == [ConnectionTerminated(0, "connection closed by this side")]


def test_server_submit_close_when_response_done_but_request_running() -> None:
    server, _, _ = feed_server(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"
    )
    server.submit_headers(1, resp(b"413"), end_stream=True)
    assert not server.has_expired()  # keep-alive: waits for the request end
    server.submit_close()
    assert server.has_expired()


def test_response_with_close_ends_before_request_body() -> None:
    server, _, _ = feed_server(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"
    )
    server.submit_headers(1, resp(b"413", (b"connection", b"close")), end_stream=True)
    assert server.has_expired()
    server.bytes_received(b"cde")  # ignored
    assert isinstance(drain(server)[-1], ConnectionTerminated)


def test_submit_stream_reset_closes_connection() -> None:
    client, stream_id, _ = open_client(req(b"POST"), end_stream=False)
    client.submit_data(stream_id, b"partial")
    client.submit_stream_reset(stream_id, HTTP1_ERROR_CODES.cancel)
    assert client.has_expired()
    assert drain(client) == [
        ConnectionTerminated(
            499,
            "stream 1 reset by this side, which on HTTP/1.1 closes the connection",
        )
    ]
    assert client.bytes_to_send().endswith(b"7\r\npartial\r\n")  # queued bytes stay
    client.submit_stream_reset(stream_id)  # already over: nothing
    assert drain(client) == []

    server, _, _ = feed_server(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    server.submit_stream_reset(1)
    assert server.has_expired() and server.bytes_to_send() == b""


def test_submit_stream_reset_of_finished_or_unknown_streams() -> None:
    pair, client, server = make_pair()
    exchange(pair, client, server)
    client.submit_stream_reset(1)  # finished: nothing
    server.submit_stream_reset(1)
    assert not client.has_expired() and not server.has_expired()
    for protocol in (client, server):
        for stream_id in (2, 3, 5, 0, -1):
            with pytest.raises(LocalProtocolError):
                protocol.submit_stream_reset(stream_id)
    assert drain(client) == [] and drain(server) == []


def test_peer_eof_while_idle() -> None:
    pair, client, server = make_pair()
    exchange(pair, client, server)
    client.eof_received()
    assert drain(client) == [ConnectionTerminated(0, "connection closed by the peer")]
    server.eof_received()
    assert drain(server) == [ConnectionTerminated(0, "connection closed by the peer")]
    assert client.has_expired() and server.has_expired()
    client.eof_received()
    client.bytes_received(b"late")
    assert drain(client) == []


def test_eof_mid_message() -> None:
    server, _, _ = feed_server(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"
    )
    server.eof_received()
    [event] = drain(server)
    assert isinstance(event, ConnectionTerminated)
    assert event.error_code == 400
    assert event.message is not None and "mid-message" in event.message

    client, _, _ = open_client()
    client.bytes_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    client.eof_received()
    events = drain(client)
    assert isinstance(events[-1], ConnectionTerminated) and events[-1].error_code == 400

    client, _, _ = open_client()  # waiting for the response
    client.eof_received()
    [event] = drain(client)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 400


def test_client_half_close_after_request_server_still_answers() -> None:
    server, _events, _ = feed_server(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    server.eof_received()
    assert drain(server) == []
    server.submit_headers(1, resp(), end_stream=True)
    assert server.bytes_to_send().startswith(b"HTTP/1.1 200")
    assert drain(server) == [ConnectionTerminated(0, "connection closed by the peer")]


def test_server_eof_while_client_still_sends_after_response() -> None:
    client, _stream_id, _ = open_client(req(b"POST"), end_stream=False)
    client.bytes_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert not client.is_available()
    client.eof_received()
    events = drain(client)
    assert events[-1] == ConnectionTerminated(0, "connection closed by the peer")


def test_eof_while_pipelined_request_waits() -> None:
    server, _, _ = feed_server(
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    server.eof_received()
    server.submit_headers(1, resp(), end_stream=True)
    events = drain(server)
    assert isinstance(events[0], HeadersReceived) and events[0].stream_id == 3
    server.submit_headers(3, resp(), end_stream=True)
    assert drain(server) == [ConnectionTerminated(0, "connection closed by the peer")]


def test_connection_lost() -> None:
    client = new_client()
    client.connection_lost()
    assert drain(client) == [ConnectionTerminated(0, "connection lost")]
    client.connection_lost()
    assert drain(client) == []

    client, _, _ = open_client()
    client.connection_lost()
    assert drain(client) == [
        ConnectionTerminated(400, "connection lost before the exchange was complete")
    ]

    server = new_server()
    server.bytes_received(b"GET / HT")  # a request has begun
    server.connection_lost()
    [event] = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 400


def test_data_event_stream_ids_follow_exchange() -> None:
    pair, client, server = make_pair()
    exchange(pair, client, server)
    client.submit_headers(3, req(b"POST", b"/", b"h", (b"content-length", b"2")))
    client.submit_data(3, b"hi", end_stream=True)
    pair.pump()
    assert pair.server_events()[-1] == DataReceived(3, b"hi", end_stream=True)


def test_many_requests_keep_headers_intact() -> None:
    pair, client, server = make_pair()
    for i in range(20):
        extra = ((b"x-i", str(i).encode()),)
        stream_id = exchange(pair, client, server, request_extra=extra)
        assert stream_id == 2 * i + 1
    assert header_value(req(b"GET", b"/", b"h", (b"x-i", b"5")), b"x-i") == b"5"
