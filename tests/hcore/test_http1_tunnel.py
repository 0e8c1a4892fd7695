"""HTTP/1.1 tunnels: CONNECT and Upgrade hand the connection over to raw bytes."""

from __future__ import annotations

import pytest

from hcore import LocalProtocolError
from hcore.events import ConnectionTerminated, DataReceived, HeadersReceived
from hcore.protocols.http1 import H11ClientProtocol, H11ServerProtocol
from tests.hcore.http1_helpers import feed_server, make_pair, new_server, req, resp
from tests.hcore.pairs import TCPPair, drain

pytestmark = pytest.mark.usefixtures("http1_helpers_implementation")

CONNECT = [(b":method", b"CONNECT"), (b":authority", b"upstream.example:443")]
UPGRADE = req(
    b"GET", b"/ws", b"h", (b"connection", b"upgrade"), (b"upgrade", b"websocket")
)


def open_tunnel(
    request: list[tuple[bytes, bytes]] = CONNECT, status: bytes = b"200"
) -> tuple[TCPPair, H11ClientProtocol, H11ServerProtocol]:
    pair, client, server = make_pair()
    client.submit_headers(1, request)
    pair.pump()
    [head] = pair.server_events()
    assert head == HeadersReceived(1, tuple(request))  # the request side stays open
    server.submit_headers(1, resp(status))
    pair.pump()
    assert pair.client_events() == [HeadersReceived(1, ((b":status", status),))]
    return pair, client, server


@pytest.mark.parametrize(
    ("request_block", "status"), [(CONNECT, b"200"), (UPGRADE, b"101")]
)
def test_tunnel_carries_raw_bytes_both_ways(
    request_block: list[tuple[bytes, bytes]], status: bytes
) -> None:
    pair, client, server = open_tunnel(request_block, status)
    client.submit_data(1, b"\x16\x03\x01 client hello")
    server.submit_data(1, b"GET / HTTP/1.1\r\n\r\n")  # not parsed: raw
    pair.pump()
    assert pair.wire[-1][1] == b"GET / HTTP/1.1\r\n\r\n"
    assert pair.server_events() == [DataReceived(1, b"\x16\x03\x01 client hello")]
    assert pair.client_events() == [DataReceived(1, b"GET / HTTP/1.1\r\n\r\n")]
    assert not client.is_available() and not client.has_expired()
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, req(), end_stream=True)
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, resp())
    with pytest.raises(LocalProtocolError):
        client.submit_data(3, b"x")

    # EOF ends one direction; the other goes on until it ends too.
    client.submit_data(1, b"last", end_stream=True)
    pair.pump()
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"more")
    server.eof_received()
    assert pair.server_events() == [
        DataReceived(1, b"last"),
        DataReceived(1, b"", end_stream=True),
    ]
    assert not server.has_expired()
    server.submit_data(1, b"reply")
    server.submit_data(1, b"", end_stream=True)
    assert server.has_expired()
    assert pair.server_events() == [
        ConnectionTerminated(0, "tunnel closed by both sides")
    ]
    pair.pump()
    client.eof_received()
    assert pair.client_events() == [
        DataReceived(1, b"reply"),
        DataReceived(1, b"", end_stream=True),
        ConnectionTerminated(0, "tunnel closed by both sides"),
    ]
    client.bytes_received(b"ignored")
    assert pair.client_events() == []


def test_bytes_buffered_before_the_answer_are_handed_over() -> None:
    # A client may send tunnel bytes right after CONNECT; a server may send
    # them in the same read as its 2xx.
    server, events, _ = feed_server(
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\nearly bytes"
    )
    assert events == [
        HeadersReceived(
            1, ((b":method", b"CONNECT"), (b":authority", b"a.example:443"))
        )
    ]
    server.bytes_received(b" and more")
    assert drain(server) == []
    server.submit_headers(1, resp())
    assert server.bytes_to_send() == b"HTTP/1.1 200 OK\r\n\r\n"
    assert drain(server) == [DataReceived(1, b"early bytes and more")]

    _pair, client, _ = make_pair()
    client.submit_headers(1, CONNECT)
    client.bytes_to_send()
    client.bytes_received(b"HTTP/1.1 200 Connection established\r\n\r\nserver first")
    assert drain(client) == [
        HeadersReceived(1, ((b":status", b"200"),)),
        DataReceived(1, b"server first"),
    ]


def test_eof_buffered_before_the_switch() -> None:
    server, _, _ = feed_server(
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\nbye"
    )
    server.eof_received()
    server.submit_headers(1, resp(), end_stream=True)
    assert drain(server) == [
        DataReceived(1, b"bye"),
        DataReceived(1, b"", end_stream=True),
        ConnectionTerminated(0, "tunnel closed by both sides"),
    ]


def test_refused_connect_keeps_http_semantics() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, CONNECT)
    pair.pump()
    pair.server_events()
    server.submit_headers(1, resp(b"407", (b"content-length", b"4")))
    # The refusal tells the server application the request side is over.
    assert pair.server_events() == [DataReceived(1, b"", end_stream=True)]
    server.submit_data(1, b"auth", end_stream=True)
    pair.pump()
    assert pair.client_events() == [
        HeadersReceived(1, ((b":status", b"407"), (b"content-length", b"4"))),
        DataReceived(1, b"auth", end_stream=True),
    ]
    # The connection is reusable; the open CONNECT side may still be ended.
    assert client.get_available_stream_id() == 3
    client.submit_data(1, b"", end_stream=True)
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"", end_stream=True)
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"data")
    client.submit_headers(3, req(), end_stream=True)
    pair.pump()
    assert isinstance(pair.server_events()[0], HeadersReceived)


def test_refused_upgrade_is_an_ordinary_exchange() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, UPGRADE)
    pair.pump()
    pair.server_events()
    server.submit_headers(1, resp(b"200"), end_stream=True)
    pair.pump()
    assert isinstance(pair.client_events()[0], HeadersReceived)
    client.submit_stream_reset(1)  # abandoned side of a finished exchange
    assert client.is_available()
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"", end_stream=True)


def test_data_before_the_tunnel_is_refused() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, CONNECT)
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"too early")
    client.submit_data(1, b"")  # nothing to send: accepted
    client.submit_data(1, b"", end_stream=True)  # ending the side is fine
    pair.pump()
    pair.server_events()
    server.submit_headers(1, resp())
    pair.pump()
    assert pair.client_events() == [HeadersReceived(1, ((b":status", b"200"),))]
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"x")


def test_connect_sent_ended_then_tunnel() -> None:
    pair, client, server = make_pair()
    client.submit_headers(1, CONNECT, end_stream=True)
    pair.pump()
    pair.server_events()
    server.submit_headers(1, resp())
    pair.pump()
    client.eof_received()
    assert pair.client_events()[-1] == ConnectionTerminated(
        0, "tunnel closed by both sides"
    )


def test_server_switch_rules() -> None:
    server, _, _ = feed_server(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, resp(b"101"))  # no Upgrade asked for
    server.submit_headers(1, resp(), end_stream=True)  # state unchanged
    assert server.bytes_to_send().startswith(b"HTTP/1.1 200")

    server, _, _ = feed_server(
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"
    )
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, resp(b"200", (b"content-length", b"0")))
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, resp(b"101"))

    # A body on an Upgrade request must arrive before the switch.
    server, _, _ = feed_server(
        b"POST / HTTP/1.1\r\nHost: h\r\nUpgrade: x\r\nContent-Length: 3\r\n\r\nab"
    )
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, resp(b"101"))
    server.bytes_received(b"c")
    assert drain(server) == [DataReceived(1, b"c")]
    server.submit_headers(1, resp(b"101"))
    assert drain(server) == []
    server.bytes_received(b"raw")
    assert drain(server) == [DataReceived(1, b"raw")]


def test_connect_with_content_length_body() -> None:
    server, _, _ = feed_server(
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n"
        b"Content-Length: 2\r\n\r\n"
    )
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, resp())  # its body has not arrived


def test_connection_lost_in_tunnel() -> None:
    _, client, _ = open_tunnel()
    client.connection_lost()
    assert drain(client) == [
        ConnectionTerminated(502, "connection lost during the tunnel")
    ]


def test_submit_close_in_tunnel_lets_it_run() -> None:
    pair, _client, server = open_tunnel()
    server.submit_close()
    assert not server.has_expired()
    server.submit_data(1, b"still", end_stream=True)
    pair.pump()
    assert pair.client_events() == [DataReceived(1, b"still")]


def test_tunnel_reset_closes_connection() -> None:
    _, client, _ = open_tunnel()
    client.submit_stream_reset(1, 502)
    assert client.has_expired()
    [event] = drain(client)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 502


def test_early_tunnel_bytes_beyond_the_bound() -> None:
    server = new_server(max_pipelined_size=10)
    server.bytes_received(
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n" + b"x" * 11
    )
    assert len(drain(server)) == 1
    server.submit_headers(1, resp())
    # Bytes were dropped, so the tunnel cannot start.
    [event] = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 429
