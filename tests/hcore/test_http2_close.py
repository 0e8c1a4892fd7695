"""HTTP/2 GOAWAY both ways, stream resets both ways, and connection end."""

from __future__ import annotations

import pytest
from hyperframe.frame import GoAwayFrame, RstStreamFrame, WindowUpdateFrame

from hcore import LocalProtocolError
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    GoawayReceived,
    HeadersReceived,
    StreamResetReceived,
    StreamResetSent,
)
from hcore.protocols.http2 import H2ClientProtocol, H2ServerProtocol
from tests.hcore.http2_helpers import (
    RawClient,
    RawServer,
    goaways,
    h2_pair,
    parse_frames,
    request,
    resets,
)
from tests.hcore.pairs import drain

OK = [(b":status", b"200")]
CANCEL = 0x8
REFUSED = 0x7


def test_server_goaway_reports_unprocessed_streams_and_lets_others_finish() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"/a", b"POST"))
    client.submit_headers(3, request(b"/b"), end_stream=True)
    pair.pump()
    assert [type(e) for e in pair.server_events()] == [HeadersReceived] * 2
    # The server closes while the client opens two more: they cross.
    server.submit_close()
    assert server.has_expired()
    assert not server.is_available()
    client.submit_headers(5, request(b"/c"), end_stream=True)
    client.submit_headers(7, request(b"/d"), end_stream=True)
    pair.pump()
    assert pair.client_events() == [GoawayReceived(3, 0, (5, 7))]
    # Streams 5 and 7 were refused and never reach the server's application.
    assert pair.server_events() == []
    assert client.has_expired()
    assert not client.is_available()
    with pytest.raises(LocalProtocolError):
        client.get_available_stream_id()
    with pytest.raises(LocalProtocolError):
        client.submit_headers(9, request(), end_stream=True)
    with pytest.raises(LocalProtocolError):
        client.submit_data(5, b"late")
    # Streams 1 and 3 finish: both sides still send after the GOAWAY.
    client.submit_data(1, b"body", end_stream=True)
    server.submit_headers(3, OK, end_stream=True)
    pair.pump()
    assert pair.server_events() == [DataReceived(1, b"body", end_stream=True)]
    server.submit_headers(1, OK)
    server.submit_data(1, b"done", end_stream=True)
    pair.pump()
    assert pair.client_events() == [
        HeadersReceived(3, OK, end_stream=True),
        HeadersReceived(1, OK),
        DataReceived(1, b"done", end_stream=True),
    ]
    # A second close does not send a second GOAWAY.
    server.submit_close()
    assert server.bytes_to_send() == b""


def test_client_goaway() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    client.submit_headers(1, request(), end_stream=True)
    client.submit_close()
    assert client.has_expired()
    pair.pump()
    assert pair.server_events() == [
        HeadersReceived(1, request(), end_stream=True),
        GoawayReceived(0, 0, ()),
    ]
    assert server.has_expired()
    server.submit_headers(1, OK, end_stream=True)
    pair.pump()
    assert pair.client_events() == [HeadersReceived(1, OK, end_stream=True)]


def test_goaway_bytes_follow_what_was_queued_before() -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    pair.server_events()
    pair.server.submit_headers(1, OK, end_stream=True)
    pair.server.submit_close(pair.server.error_codes.no_error)
    pair.client.bytes_received(pair.server.bytes_to_send())
    assert pair.client_events() == [
        HeadersReceived(1, OK, end_stream=True),
        GoawayReceived(1, 0, ()),
    ]


def test_goaway_with_an_error_terminates() -> None:
    pair = h2_pair()
    client = pair.client
    client.submit_headers(1, request(), end_stream=True)
    client.bytes_received(GoAwayFrame(last_stream_id=0, error_code=0x2).serialize())
    assert pair.client_events() == [
        GoawayReceived(0, 0x2, (1,)),
        ConnectionTerminated(0x2, "the peer closed the connection with error 0x2"),
    ]
    assert client.has_expired()
    client.bytes_received(b"anything")
    assert client.next_event() is None
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"x")


def test_client_reset_reaches_the_server() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"/", b"POST"))
    client.submit_data(1, b"x" * 100_000)
    assert client.pending_data_size(1) > 0
    pair.pump()
    client.submit_stream_reset(1, client.error_codes.cancel)
    assert client.pending_data_size(1) == 0
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"more")
    client.submit_stream_reset(1)  # already closed: nothing happens
    pair.wire.clear()
    pair.pump()
    assert resets(parse_frames(pair.wire[0][1])) == [(1, CANCEL)]
    events = pair.server_events()
    assert events[0] == HeadersReceived(1, request(b"/", b"POST"))
    assert events[-1] == StreamResetReceived(1, CANCEL)
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, OK)
    assert server.is_available()


def test_server_reset_reaches_the_client_and_drops_untaken_events() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"/", b"POST"))
    client.submit_data(1, b"y" * 200_000)
    pair.pump()
    # The server resets without taking the request's events: they are
    # dropped and their credit goes back to the connection.
    server.submit_stream_reset(1, server.error_codes.refused_stream)
    assert server.next_event() is None
    pair.pump()
    assert pair.client_events() == [StreamResetReceived(1, REFUSED)]
    assert client.pending_data_size(1) == 0
    # The connection window is intact: a new stream gets a full window.
    client.submit_headers(3, request(b"/", b"POST"))
    client.submit_data(3, b"z" * 65_535, end_stream=True)
    assert client.pending_data_size(3) == 0


def test_reset_of_unknown_stream_and_bad_codes() -> None:
    pair = h2_pair()
    pair.client.submit_stream_reset(99)
    assert pair.client.bytes_to_send() == b""
    for bad in (-1, 2**32, "8"):
        with pytest.raises(LocalProtocolError):
            pair.client.submit_stream_reset(1, bad)  # type: ignore[arg-type]
        with pytest.raises(LocalProtocolError):
            pair.client.submit_close(bad)  # type: ignore[arg-type]


def test_stream_error_from_h2_becomes_stream_reset_sent() -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(b"/", b"POST"))
    pair.client.submit_headers(3, request(b"/", b"POST"))
    pair.pump()
    pair.server_events()
    # RFC 9113 §6.9.1: a window pushed past 2**31-1 is a stream error.
    overflow = WindowUpdateFrame(1, window_increment=2**31 - 1)
    pair.server.bytes_received(overflow.serialize())
    assert pair.server_events() == [StreamResetSent(1, 0x3)]
    pair.pump()
    assert pair.client_events() == [StreamResetReceived(1, 0x3)]
    # The other stream is unaffected.
    pair.client.submit_data(3, b"fine", end_stream=True)
    pair.pump()
    assert pair.server_events() == [DataReceived(3, b"fine", end_stream=True)]


def test_data_after_end_stream_is_a_stream_error() -> None:
    server = H2ServerProtocol()
    raw = RawClient(server)
    raw.start()
    raw.send(*raw.headers(1, request(), end_stream=True))
    assert drain(server) == [HeadersReceived(1, request(), end_stream=True)]
    # RFC 9113 §5.1: half-closed (remote) takes no DATA: STREAM_CLOSED.
    raw.send(raw.data(1, b"extra"))
    assert drain(server) == [StreamResetSent(1, 0x5)]
    assert resets(raw.read()) == [(1, 0x5)]
    assert not server.has_expired()


def test_request_and_reset_in_one_read() -> None:
    server = H2ServerProtocol()
    raw = RawClient(server)
    raw.start()
    raw.send(
        b"".join(f.serialize() for f in raw.headers(1, request(), end_stream=False))
        + RstStreamFrame(1, error_code=CANCEL).serialize()
    )
    assert drain(server) == [
        HeadersReceived(1, request()),
        StreamResetReceived(1, CANCEL),
    ]


def test_eof_terminates() -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    pair.server.eof_received()
    assert pair.server_events() == [
        HeadersReceived(1, request(), end_stream=True),
        ConnectionTerminated(0, "the peer closed the connection"),
    ]
    assert pair.server.has_expired()
    assert not pair.server.is_available()
    with pytest.raises(LocalProtocolError):
        pair.server.submit_headers(1, OK)
    pair.server.submit_stream_reset(1)
    pair.server.submit_close()
    pair.server.eof_received()
    pair.server.connection_lost()
    assert pair.server.next_event() is None
    assert pair.server.bytes_to_send() == b""


def test_connection_lost_terminates_and_drops_output() -> None:
    client = H2ClientProtocol()
    client.submit_headers(1, request(), end_stream=True)
    client.connection_lost()
    assert client.bytes_to_send() == b""
    assert client.next_event() == ConnectionTerminated(0, "the connection was lost")
    assert client.next_event() is None
    assert client.has_expired()
    with pytest.raises(LocalProtocolError):
        client.submit_headers(3, request())


def test_stream_ids_run_out() -> None:
    pair = h2_pair()
    last = 2**31 - 1
    pair.client.submit_headers(last, request(), end_stream=True)
    assert pair.client.has_expired()
    assert not pair.client.is_available()
    with pytest.raises(LocalProtocolError):
        pair.client.get_available_stream_id()
    pair.pump()
    assert pair.server_events() == [HeadersReceived(last, request(), end_stream=True)]
    pair.server.submit_headers(last, OK, end_stream=True)
    pair.pump()
    assert pair.client_events() == [HeadersReceived(last, OK, end_stream=True)]


def test_termination_goaway_keeps_an_earlier_last_stream_id() -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    pair.server_events()
    pair.server.submit_close()
    assert goaways(pair.server.bytes_to_send()) == [(1, 0)]
    pair.server.bytes_received(b"\x00" * 9 + b"garbage!")  # DATA on stream 0
    assert goaways(pair.server.bytes_to_send()) == [(1, 0x1)]


def test_reset_keeps_other_streams_events() -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(b"/", b"POST"))
    pair.client.submit_headers(3, request(b"/", b"POST"))
    pair.client.submit_data(1, b"one")
    pair.client.submit_data(3, b"three", end_stream=True)
    pair.pump()
    pair.server.submit_stream_reset(1, CANCEL)
    assert pair.server_events() == [
        HeadersReceived(3, request(b"/", b"POST")),
        DataReceived(3, b"three", end_stream=True),
    ]


def test_frames_on_unprocessed_streams_are_ignored() -> None:
    client = H2ClientProtocol()
    raw = RawServer(client)
    client.submit_headers(1, request(), end_stream=True)
    client.submit_headers(3, request(), end_stream=True)
    raw.pump()
    client.bytes_received(GoAwayFrame(last_stream_id=1).serialize())
    assert drain(client) == [GoawayReceived(1, 0, (3,))]
    # A server that answers anyway is not listened to.
    raw.respond(3, [(b":status", b"103")])
    raw.respond(3, OK)
    raw.conn.send_data(3, b"ignored", end_stream=True)
    raw.respond(1, OK, end_stream=True)
    assert drain(client) == [HeadersReceived(1, OK, end_stream=True)]


def test_goaway_after_our_own_keeps_its_last_stream_id() -> None:
    server = H2ServerProtocol()
    server.bytes_to_send()
    server.submit_close()
    server.bytes_received(b"not a preface, not at all")
    assert goaways(server.bytes_to_send()) == [(0, 0), (0, 0x1)]
