"""HTTP/3 stream resets, GOAWAY, idle timeout and the end of a connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcore import HTTP3_ERROR_CODES as CODES
from hcore import Datagram, Headers, LocalProtocolError
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    SendBufferDrained,
    StreamResetReceived,
    StreamResetSent,
)
from hcore.protocols.http3 import (
    AioquicProtocol,
    HTTP3ClientFactory,
    HTTP3ServerFactory,
)
from tests.hcore.quic_pairs import QUICPair, TLSFiles, drain, make_tls_files

IDLE_ERROR = 0x1  # aioquic closes an idle connection with QUIC INTERNAL_ERROR


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


def make_pair(tls: TLSFiles, idle_timeout: float = 60.0) -> QUICPair:
    made = QUICPair(
        HTTP3ClientFactory(idle_timeout=idle_timeout),
        HTTP3ServerFactory(idle_timeout=idle_timeout),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    made.pump()
    return made


@pytest.fixture
def pair(tls: TLSFiles) -> QUICPair:
    return make_pair(tls)


def request(method: bytes = b"GET") -> Headers:
    return [
        (b":method", method),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", b"/"),
    ]


def quic_of(protocol: object) -> object:
    # Tests that play a peer other than hcore reach for the aioquic connection.
    assert isinstance(protocol, AioquicProtocol)
    assert protocol._quic is not None
    return protocol._quic


def terminated(events: list[Event]) -> ConnectionTerminated | None:
    found = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert len(found) <= 1
    if found:
        assert events[-1] is found[0]  # nothing after it
    return found[0] if found else None


def finish(pair: QUICPair) -> None:
    """Run until both sides are over (closing and draining periods included)."""
    pair.run_until(
        lambda: pair.client.get_timer() is None and pair.server.get_timer() is None,
        max_time=10,
    )


def test_client_resets_a_request(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"POST"))
    client.submit_data(1, b"part")
    pair.pump()
    assert [type(e) for e in drain(server)] == [HeadersReceived, DataReceived]
    client.submit_stream_reset(1, CODES.cancel)
    client.submit_stream_reset(1, CODES.cancel)  # already closed: nothing
    assert client.pending_data_size(1) == 0
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"more")
    pair.pump()
    assert drain(server) == [StreamResetReceived(1, CODES.cancel)]
    assert drain(client) == []  # the server's answering reset is not news
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, [(b":status", b"200")])
    # The connection goes on.
    client.submit_headers(3, request(), end_stream=True)
    pair.pump()
    assert drain(server) == [HeadersReceived(3, tuple(request()), end_stream=True)]


def test_server_resets_a_response(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"POST"))
    pair.pump()
    drain(server)
    server.submit_headers(1, [(b":status", b"200")])
    server.submit_data(1, b"partial")
    pair.pump()
    server.submit_stream_reset(1, CODES.internal_error)
    pair.pump()
    events = drain(client)
    assert events[-1] == StreamResetReceived(1, CODES.internal_error)
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"body")
    assert drain(server) == []


def test_reset_with_code_zero_means_no_error(pair: QUICPair) -> None:
    pair.client.submit_headers(1, request(b"POST"))
    pair.pump()
    drain(pair.server)
    pair.client.submit_stream_reset(1)
    pair.pump()
    assert drain(pair.server) == [StreamResetReceived(1, CODES.no_error)]


def test_peer_resets_while_data_is_held(tls: TLSFiles) -> None:
    made = make_pair(tls)
    client, server = made.client, made.server
    client.submit_headers(1, request(b"POST"), end_stream=True)
    made.pump()
    drain(server)
    server.submit_headers(1, [(b":status", b"200")])
    server.submit_data(1, b"x" * (3 << 20))
    assert server.pending_data_size(1) > 0
    client.submit_stream_reset(1, CODES.cancel)
    made.pump()
    assert StreamResetReceived(1, CODES.cancel) in drain(server)
    assert server.pending_data_size(1) == 0
    with pytest.raises(LocalProtocolError):
        server.submit_data(1, b"more")


def test_stop_sending_without_error_keeps_the_response(pair: QUICPair) -> None:
    # RFC 9114 §4.1: a server that answered early may stop the request body.
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"POST"))
    client.submit_data(1, b"y" * (3 << 20))
    assert client.pending_data_size(1) > 0
    pair.pump()
    drain(server)
    server.submit_headers(1, [(b":status", b"413")])
    quic_of(server).stop_stream(0, CODES.no_error)  # type: ignore[attr-defined]
    pair.pump()
    events = drain(client)
    assert HeadersReceived(1, ((b":status", b"413"),)) in events
    assert SendBufferDrained(1) in events
    assert not any(isinstance(e, StreamResetReceived) for e in events)
    assert client.pending_data_size(1) == 0
    client.submit_data(1, b"dropped")  # the peer reads no more
    client.submit_headers(1, [(b"x-t", b"1")], end_stream=True)
    # aioquic answered the STOP_SENDING with a reset of the request, which
    # cuts the request body short but leaves the response standing.
    assert drain(server) == [StreamResetReceived(1, CODES.no_error)]
    server.submit_data(1, b"too large", end_stream=True)
    pair.pump()
    assert drain(client) == [DataReceived(1, b"too large", end_stream=True)]
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"x")  # the exchange is over


def test_stop_sending_with_an_error_resets_the_stream(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"POST"))
    pair.pump()
    drain(server)
    quic_of(server).stop_stream(0, CODES.cancel)  # type: ignore[attr-defined]
    pair.pump()
    assert drain(client) == [StreamResetReceived(1, CODES.cancel)]
    # aioquic answered the STOP_SENDING with a reset, which the server sees.
    assert drain(server) == [StreamResetReceived(1, CODES.cancel)]


def test_server_goaway_lets_open_streams_finish(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    [opened] = drain(server)
    assert isinstance(opened, HeadersReceived)
    server.submit_close()
    assert server.has_expired()
    # Before the GOAWAY arrives the client opens another request.
    client.submit_headers(3, request(), end_stream=True)
    pair.pump()
    events = drain(client)
    assert events[:2] == [
        GoawayReceived(1, CODES.no_error, unprocessed_stream_ids=(3,)),
        StreamResetSent(3, CODES.cancel),
    ]
    assert client.has_expired()
    assert not client.is_available()
    with pytest.raises(LocalProtocolError):
        client.get_available_stream_id()
    with pytest.raises(LocalProtocolError):
        client.submit_headers(5, request())
    assert drain(server) == []  # the refused request never reached the app
    server.submit_headers(1, [(b":status", b"200")])
    server.submit_data(1, b"last", end_stream=True)
    finish(pair)
    assert drain(server) == [ConnectionTerminated(CODES.no_error)]
    events = drain(client)
    assert events[0] == HeadersReceived(1, ((b":status", b"200"),))
    assert events[-1] == ConnectionTerminated(CODES.no_error)


def test_server_goaway_on_an_idle_connection(pair: QUICPair) -> None:
    pair.server.submit_close()
    finish(pair)
    events = drain(pair.client)
    assert events[0] == GoawayReceived(0, CODES.no_error)
    assert terminated(events) == ConnectionTerminated(CODES.no_error)
    assert drain(pair.server) == [ConnectionTerminated(CODES.no_error)]
    pair.server.submit_close()  # after the end: nothing
    assert pair.server.datagrams_to_send() == []


def test_client_goaway(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    client.submit_headers(1, request(), end_stream=True)
    client.submit_close()
    client.submit_close()  # once is enough
    assert client.has_expired()
    pair.pump()
    events = drain(server)
    # Frames of the control stream and of the request share a packet; their
    # order is aioquic's.
    assert sorted(events, key=repr) == [
        GoawayReceived(0, CODES.no_error),
        HeadersReceived(1, tuple(request()), end_stream=True),
    ]
    assert server.has_expired()
    server.submit_headers(1, [(b":status", b"204")], end_stream=True)
    finish(pair)
    events = drain(client)
    assert events[0] == HeadersReceived(1, ((b":status", b"204"),), end_stream=True)
    assert terminated(events) == ConnectionTerminated(CODES.no_error)
    assert terminated(drain(server)) == ConnectionTerminated(CODES.no_error)


def test_close_with_an_error_is_abrupt(pair: QUICPair) -> None:
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.client.submit_close(CODES.internal_error)
    with pytest.raises(LocalProtocolError):
        pair.client.submit_data(1, b"x")
    finish(pair)
    assert terminated(drain(pair.server)) == ConnectionTerminated(CODES.internal_error)
    assert terminated(drain(pair.client)) == ConnectionTerminated(CODES.internal_error)


def test_idle_timeout_fires_at_the_right_time(tls: TLSFiles) -> None:
    made = make_pair(tls, idle_timeout=5.0)
    made.client.submit_headers(1, request(), end_stream=True)
    made.pump()
    drain(made.server)
    made.server.submit_headers(1, [(b":status", b"200")], end_stream=True)
    made.pump()
    drain(made.client)
    last = max(made.stats.last_sent.values())
    assert made.in_flight == 0
    made.advance(last + 5.0 - 0.1)
    assert drain(made.client) == [] and drain(made.server) == []
    made.run_until(lambda: made.client.has_expired(), max_time=1.0)
    assert made.now <= last + 5.0 + 0.1
    assert drain(made.client) == [ConnectionTerminated(IDLE_ERROR, "Idle timeout")]
    made.run_until(lambda: made.server.has_expired(), max_time=1.0)
    assert drain(made.server) == [ConnectionTerminated(IDLE_ERROR, "Idle timeout")]
    assert made.client.get_timer() is None and made.server.get_timer() is None


def test_idle_timeout_when_the_network_is_cut(tls: TLSFiles) -> None:
    made = make_pair(tls, idle_timeout=3.0)
    made.partitioned = True
    start = made.now
    made.client.submit_headers(1, request(), end_stream=True)
    made.run_until(lambda: made.client.has_expired(), max_time=10)
    assert 3.0 <= made.now - start <= 3.5
    assert terminated(drain(made.client)) == ConnectionTerminated(
        IDLE_ERROR, "Idle timeout"
    )


def test_connection_lost(pair: QUICPair) -> None:
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.client.connection_lost()
    pair.client.connection_lost()
    assert drain(pair.client) == [
        ConnectionTerminated(CODES.no_error, "the connection was lost")
    ]
    assert pair.client.has_expired()
    assert not pair.client.is_available()
    assert pair.client.datagrams_to_send() == []
    assert pair.client.get_timer() is None
    pair.client.clock(pair.now + 1)
    pair.client.datagram_received(Datagram(b"\x40" * 1200, ("198.51.100.7", 443)))
    pair.client.submit_stream_reset(1)
    pair.client.submit_close()
    with pytest.raises(LocalProtocolError):
        pair.client.submit_headers(3, request())
    assert drain(pair.client) == []


def test_late_frames_after_a_reset_are_dropped(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"POST"))
    pair.pump()
    drain(server)
    server.submit_headers(1, [(b":status", b"200")], end_stream=True)
    client.submit_stream_reset(1, CODES.cancel)  # crosses the response
    pair.pump()
    assert drain(client) == []
    client.submit_headers(3, request(b"POST"))
    pair.pump()
    seen = drain(server)
    server.submit_headers(3, [(b":status", b"200")])
    pair.pump()
    drain(client)
    server.submit_data(3, b"late", end_stream=True)
    client.submit_stream_reset(3, CODES.cancel)  # crosses the body
    pair.pump()
    assert drain(client) == []
    assert [*seen, *drain(server)] == [
        StreamResetReceived(1, CODES.cancel),
        HeadersReceived(3, tuple(request(b"POST"))),
        StreamResetReceived(3, CODES.cancel),
    ]


def test_peer_reset_without_stop_sending(pair: QUICPair) -> None:
    # A peer other than hcore may reset only its own half, with an error.
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"POST"))
    client.submit_data(1, b"z" * (3 << 20))
    pair.pump()
    drain(server)
    server.submit_headers(1, [(b":status", b"200")])
    quic_of(server).reset_stream(0, CODES.internal_error)  # type: ignore[attr-defined]
    pair.pump()
    events = drain(client)
    assert events[-1] == StreamResetReceived(1, CODES.internal_error)
    assert client.pending_data_size(1) == 0
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"z")
    # The client gave up its half too, which the server hears about.
    assert drain(server) == [StreamResetReceived(1, CODES.cancel)]


def test_resets_of_other_streams_are_ignored(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    # The server resets a unidirectional stream of a type HTTP/3 ignores.
    squic = quic_of(server)
    uni = squic.get_next_available_stream_id(is_unidirectional=True)  # type: ignore[attr-defined]
    squic.send_stream_data(uni, b"\x21abc")  # type: ignore[attr-defined]
    squic.reset_stream(uni, CODES.cancel)  # type: ignore[attr-defined]
    # The client resets a request stream before sending any request on it.
    cquic = quic_of(client)
    bidi = cquic.get_next_available_stream_id()  # type: ignore[attr-defined]
    cquic.reset_stream(bidi, CODES.cancel)  # type: ignore[attr-defined]
    pair.pump()
    assert drain(client) == [] and drain(server) == []
    sid = client.get_available_stream_id()
    client.submit_headers(sid, request(), end_stream=True)
    pair.pump()
    assert drain(server) == [HeadersReceived(sid, tuple(request()), end_stream=True)]
