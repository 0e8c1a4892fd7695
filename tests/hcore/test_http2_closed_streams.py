"""Frames a client sends on streams that are already closed (RFC 9113 §5.1, §5.4).

A frame on a stream the server reset, or DATA on one that just ended, is
answered with RST_STREAM and the connection goes on; HEADERS on a stream
closed by END_STREAM, or on a stream id skipped over by a higher one, are a
connection error (GOAWAY).  These are the
paths of ``H2Connection._receive_frame`` (``hcore/protocols/http2/_h2.py``).
"""

from __future__ import annotations

from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from hcore.events import ConnectionTerminated, HeadersReceived, StreamResetSent
from hcore.protocols.http2 import H2ServerProtocol
from tests.hcore.http2_helpers import RawClient, request, resets
from tests.hcore.pairs import drain


def _client() -> tuple[H2ServerProtocol, RawClient]:
    server = H2ServerProtocol()
    client = RawClient(server)
    client.start()
    return server, client


def _goaway_codes(client: RawClient) -> list[int]:
    return [f.error_code for f in client.frames if isinstance(f, GoAwayFrame)]


def _answer(server: H2ServerProtocol, stream_id: int) -> None:
    server.submit_headers(stream_id, [(b":status", b"200")], end_stream=True)


def test_data_after_our_reset_is_answered_with_rst_stream() -> None:
    server, client = _client()
    client.send(*client.headers(1, request(b"/", b"POST"), end_stream=False))
    assert [type(e) for e in drain(server)] == [HeadersReceived]
    server.submit_stream_reset(1, ErrorCodes.CANCEL)
    client.read()
    client.send(client.data(1, b"late", end_stream=True))
    assert resets(client.read()) == [(1, ErrorCodes.STREAM_CLOSED)]
    assert _goaway_codes(client) == []
    # The connection still serves requests.
    client.send(*client.headers(3, request(b"/next")))
    events = drain(server)
    assert [type(e) for e in events] == [HeadersReceived]
    assert not server.has_expired()


def test_trailers_after_our_reset_are_answered_with_rst_stream() -> None:
    server, client = _client()
    client.send(*client.headers(1, request(b"/", b"POST"), end_stream=False))
    drain(server)
    server.submit_stream_reset(1, ErrorCodes.CANCEL)
    client.read()
    client.send(*client.headers(1, [(b"x-trailer", b"1")]))
    assert resets(client.read()) == [(1, ErrorCodes.STREAM_CLOSED)]
    assert _goaway_codes(client) == []
    assert not server.has_expired()


def test_headers_reusing_a_reset_stream_id_get_rst_stream() -> None:
    server, client = _client()
    client.send(*client.headers(1, request(b"/", b"POST"), end_stream=False))
    drain(server)
    server.submit_stream_reset(1, ErrorCodes.CANCEL)
    client.read()
    # A new stream makes h2 forget stream 1; HEADERS on 1 again are "too low".
    client.send(*client.headers(3, request(b"/b")))
    drain(server)
    _answer(server, 3)
    client.read()
    client.send(*client.headers(1, request(b"/again")))
    assert (1, ErrorCodes.STREAM_CLOSED) in resets(client.read())
    assert _goaway_codes(client) == []
    assert not server.has_expired()


def test_data_on_a_recently_ended_stream_gets_rst_stream() -> None:
    server, client = _client()
    client.send(*client.headers(1, request()))
    drain(server)
    _answer(server, 1)
    client.read()
    client.send(client.data(1, b"late", end_stream=True))
    assert resets(client.read()) == [(1, ErrorCodes.STREAM_CLOSED)]
    assert _goaway_codes(client) == []
    assert not server.has_expired()


def test_headers_on_a_recently_ended_stream_end_the_connection() -> None:
    server, client = _client()
    client.send(*client.headers(1, request()))
    drain(server)
    _answer(server, 1)
    client.read()
    # "Trailers" after the request ended: the stream is closed both ways.
    client.send(*client.headers(1, [(b"x-trailer", b"1")]))
    client.read()
    assert _goaway_codes(client) == [ErrorCodes.STREAM_CLOSED]
    events = drain(server)
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == ErrorCodes.STREAM_CLOSED
    assert server.has_expired()


def test_headers_reusing_an_ended_stream_id_end_the_connection() -> None:
    server, client = _client()
    client.send(*client.headers(1, request()))
    drain(server)
    _answer(server, 1)
    client.send(*client.headers(3, request(b"/b")))
    drain(server)
    _answer(server, 3)
    client.read()
    client.send(*client.headers(1, request(b"/again")))
    client.read()
    assert _goaway_codes(client) == [ErrorCodes.STREAM_CLOSED]
    assert server.has_expired()


def test_headers_on_a_skipped_stream_id_are_a_protocol_error() -> None:
    server, client = _client()
    client.send(*client.headers(5, request()))
    drain(server)
    client.send(*client.headers(3, request(b"/late")))
    client.read()
    assert _goaway_codes(client) == [ErrorCodes.PROTOCOL_ERROR]
    events = drain(server)
    assert not any(isinstance(e, StreamResetSent) for e in events)
    assert isinstance(events[-1], ConnectionTerminated)
    assert server.has_expired()
