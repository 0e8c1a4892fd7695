"""Caller misuse raises LocalProtocolError at once and changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hcore import LocalProtocolError
from hcore.events import DataReceived, HeadersReceived, TrailersReceived
from hcore.protocols import HTTPOverTCPProtocol
from hcore.protocols.http2 import H2ServerProtocol
from tests.hcore.http2_helpers import h2_pair, request
from tests.hcore.pairs import TCPPair

OK = [(b":status", b"200")]


def _refused(protocol: HTTPOverTCPProtocol, call: Callable[[], object]) -> None:
    """``call`` raises LocalProtocolError and queues nothing."""
    with pytest.raises(LocalProtocolError):
        call()
    assert protocol.bytes_to_send() == b""
    assert protocol.next_event() is None


@pytest.fixture
def pair() -> TCPPair:
    return h2_pair()


BAD_REQUESTS = {
    "not bytes": [(b":method", "GET"), *request()[1:]],
    "not pairs": [(b":method", b"GET", b"x"), *request()[1:]],
    "not a sequence": 42,
    "upper-case name": [*request(), (b"X-Up", b"1")],
    "bad name": [*request(), (b"a b", b"1")],
    "control in value": [*request(), (b"x", b"a\x01b")],
    "trailing space": [*request(), (b"x", b"a ")],
    "no method": request()[1:],
    "no path": request()[:3],
    "empty path": [*request()[:3], (b":path", b"")],
    "unknown pseudo": [*request(), (b":status", b"200")],
    "pseudo after field": [*request()[:3], (b"x", b"1"), (b":path", b"/")],
    "repeated pseudo": [*request(), (b":method", b"GET")],
    "connect with scheme": [
        (b":method", b"CONNECT"),
        (b":scheme", b"http"),
        (b":authority", b"a:1"),
    ],
    "protocol without connect": [*request(), (b":protocol", b"websocket")],
    "extended connect without path": [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":authority", b"a"),
    ],
}


@pytest.mark.parametrize("headers", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
def test_bad_request_blocks(pair: TCPPair, headers: object) -> None:
    _refused(pair.client, lambda: pair.client.submit_headers(1, headers))  # type: ignore[arg-type]
    assert pair.client.get_available_stream_id() == 1
    assert pair.client.pending_data_size(1) == 0
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    assert pair.server_events() == [HeadersReceived(1, request(), end_stream=True)]


def test_extended_connect_needs_the_usual_pseudo_headers() -> None:
    pair = h2_pair(server=H2ServerProtocol(enable_connect_protocol=True))
    headers = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":authority", b"a"),
    ]
    _refused(pair.client, lambda: pair.client.submit_headers(1, headers))
    pair.client.submit_headers(1, [*headers, (b":scheme", b"https"), (b":path", b"/")])
    pair.pump()
    [event] = pair.server_events()
    assert isinstance(event, HeadersReceived)


@pytest.mark.parametrize("stream_id", [0, 2, -1, 2**31 + 1])
def test_bad_new_stream_ids(pair: TCPPair, stream_id: int) -> None:
    _refused(pair.client, lambda: pair.client.submit_headers(stream_id, request()))


def test_stream_ids_cannot_go_back(pair: TCPPair) -> None:
    pair.client.submit_headers(5, request(), end_stream=True)
    pair.pump()
    pair.server_events()
    _refused(pair.client, lambda: pair.client.submit_headers(3, request()))
    # An ended stream takes nothing more.
    _refused(pair.client, lambda: pair.client.submit_headers(5, [(b"x", b"1")], True))
    _refused(pair.client, lambda: pair.client.submit_data(5, b"x"))
    assert pair.client.get_available_stream_id() == 7


def test_server_cannot_open_or_answer_unknown_streams(pair: TCPPair) -> None:
    _refused(pair.server, lambda: pair.server.submit_headers(2, OK))
    _refused(pair.server, lambda: pair.server.submit_headers(1, OK))
    _refused(pair.server, lambda: pair.server.submit_data(1, b"x"))


BAD_RESPONSES = {
    "no status": [(b"x", b"1")],
    "short status": [(b":status", b"20")],
    "status 600": [(b":status", b"600")],
    "101": [(b":status", b"101")],
    "request pseudo": [(b":status", b"200"), (b":path", b"/")],
    "bad name": [(b":status", b"200"), (b"Bad", b"1")],
}


@pytest.mark.parametrize(
    "headers", list(BAD_RESPONSES.values()), ids=list(BAD_RESPONSES)
)
def test_bad_response_blocks(pair: TCPPair, headers: list[tuple[bytes, bytes]]) -> None:
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    pair.server_events()
    _refused(pair.server, lambda: pair.server.submit_headers(1, headers))
    pair.server.submit_headers(1, OK, end_stream=True)
    pair.pump()
    assert pair.client_events() == [HeadersReceived(1, OK, end_stream=True)]


def test_response_order_is_enforced(pair: TCPPair) -> None:
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"/", b"POST"))
    pair.pump()
    pair.server_events()
    # Data before the response, a 1xx that ends the stream.
    _refused(server, lambda: server.submit_data(1, b"early"))
    _refused(server, lambda: server.submit_headers(1, [(b":status", b"100")], True))
    server.submit_headers(1, [(b":status", b"100")])
    server.submit_headers(1, OK)
    pair.pump()
    # Now only trailers, which must end the stream and hold no pseudo-headers.
    _refused(server, lambda: server.submit_headers(1, [(b"x", b"1")]))
    _refused(server, lambda: server.submit_headers(1, OK, end_stream=True))
    server.submit_data(1, b"body")
    server.submit_headers(1, [(b"x", b"1")], end_stream=True)
    pair.pump()
    _refused(server, lambda: server.submit_data(1, b"late"))
    _refused(server, lambda: server.submit_headers(1, [(b"y", b"2")], True))
    # The client side of the stream is still open.
    client.submit_data(1, b"req", end_stream=True)
    pair.pump()
    assert pair.server_events() == [DataReceived(1, b"req", end_stream=True)]
    assert pair.client_events()[-1] == TrailersReceived(1, [(b"x", b"1")])


def test_data_must_be_bytes_like(pair: TCPPair) -> None:
    pair.client.submit_headers(1, request(b"/", b"POST"))
    pair.pump()
    _refused(pair.client, lambda: pair.client.submit_data(1, 42))  # type: ignore[arg-type]
    pair.client.submit_data(1, bytearray(b"ab"))  # type: ignore[arg-type]
    pair.client.submit_data(1, memoryview(b"cd"))  # type: ignore[arg-type]
    pair.client.submit_data(1, b"")
    pair.client.submit_data(1, b"", end_stream=True)
    pair.pump()
    # The frames arrive in one read: their data is taken as one event.
    assert pair.server_events()[1:] == [DataReceived(1, b"abcd", end_stream=True)]


def test_client_trailers_must_end_the_stream(pair: TCPPair) -> None:
    pair.client.submit_headers(1, request(b"/", b"POST"))
    pair.pump()
    _refused(pair.client, lambda: pair.client.submit_headers(1, [(b"x", b"1")]))
    _refused(
        pair.client, lambda: pair.client.submit_headers(1, [(b":path", b"/")], True)
    )
    pair.client.submit_headers(1, [(b"x", b"1")], end_stream=True)
    pair.pump()
    assert pair.server_events()[-1] == TrailersReceived(1, [(b"x", b"1")])


def test_headers_may_be_any_iterable(pair: TCPPair) -> None:
    fields = iter(request(b"/", b"GET", (b"cookie", b"a=1"), (b"te", b"trailers")))
    pair.client.submit_headers(1, fields, end_stream=True)  # type: ignore[arg-type]
    pair.pump()
    assert pair.server_events() == [
        HeadersReceived(
            1,
            request(b"/", b"GET", (b"cookie", b"a=1"), (b"te", b"trailers")),
            end_stream=True,
        )
    ]
