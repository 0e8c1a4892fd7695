"""HTTP/1.1 errors: bad input from the peer, limits, and caller misuse."""

from __future__ import annotations

from collections.abc import Callable

import h11
import pytest

from hcore import LocalProtocolError
from hcore.events import ConnectionTerminated, DataReceived, HeadersReceived
from hcore.protocols.http1 import H11ClientProtocol, H11ServerProtocol
from tests.hcore.http1_helpers import (
    feed_server,
    new_client,
    new_server,
    open_client,
    req,
    resp,
)
from tests.hcore.pairs import drain

pytestmark = pytest.mark.usefixtures("http1_helpers_implementation")

# -- bad requests ---------------------------------------------------------------

BAD_REQUESTS = {
    "bad request line": (b"GARBAGE\r\n\r\n", 400),
    "TLS to a plain port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    "bad header line": (b"GET / HTTP/1.1\r\nHost: h\r\nno colon here\r\n\r\n", 400),
    "bad header name": (b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n", 400),
    "missing Host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two Hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "conflicting Content-Length": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        400,
    ),
    "bad Content-Length": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        400,
    ),
    "unknown Transfer-Encoding": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,  # RFC 9112 §6.3 (4): chunked is not the final coding
    ),
    "CONNECT without host:port": (b"CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "asterisk for GET": (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "relative target": (b"GET foo HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "absolute form without authority": (
        b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
        400,
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_request_is_answered_and_closes(name: str) -> None:
    raw, status = BAD_REQUESTS[name]
    server, events, out = feed_server(raw)
    assert out.startswith(b"HTTP/1.1 %d " % status)
    assert b"connection: close\r\n" in out
    [event] = events
    assert isinstance(event, ConnectionTerminated)
    assert event.error_code == status and event.message
    assert server.has_expired()
    server.bytes_received(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")  # ignored now
    assert drain(server) == [] and server.bytes_to_send() == b""
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, resp())


def test_bad_chunk_size_after_headers() -> None:
    _server, events, out = feed_server(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    )
    assert isinstance(events[0], HeadersReceived)
    assert isinstance(events[1], ConnectionTerminated) and events[1].error_code == 400
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_bad_input_after_response_started_just_closes() -> None:
    server, _, _ = feed_server(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    server.submit_headers(1, resp())
    server.submit_data(1, b"streaming")
    sent = server.bytes_to_send()
    server.bytes_received(b"not-hex\r\n")
    [event] = drain(server)
    assert isinstance(event, ConnectionTerminated) and event.error_code == 400
    assert server.bytes_to_send() == b""
    assert sent.startswith(b"HTTP/1.1 200 OK\r\n")


def test_oversized_request_head_gets_431() -> None:
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    # Whole, and trickled in small pieces: both hit the limit.
    for pieces in ([big], [big[i : i + 100] for i in range(0, len(big), 100)]):
        server = new_server(max_header_size=1024)
        for piece in pieces:
            server.bytes_received(piece)
        out = server.bytes_to_send()
        assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        [event] = drain(server)
        assert isinstance(event, ConnectionTerminated) and event.error_code == 431


def test_too_many_request_fields_gets_431() -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(6))
    _server, events, out = feed_server(
        b"GET / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\n",
        new_server(max_header_count=5),
    )
    assert out.startswith(b"HTTP/1.1 431 ")
    assert events == [ConnectionTerminated(431, "more than 5 header fields")]


def test_too_many_trailer_fields() -> None:
    server = new_server(max_header_count=2)
    server.bytes_received(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
    )
    events = drain(server)
    assert events[-1] == ConnectionTerminated(
        431, "trailers: more than 2 header fields"
    )


# -- bad responses --------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",  # nobody asked
    ],
)
def test_client_garbage_response(raw: bytes) -> None:
    client, _, _ = open_client()
    client.bytes_received(raw)
    events = drain(client)
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == 400 and events[-1].message
    assert client.has_expired() and client.bytes_to_send() == b""


def test_client_unsolicited_data() -> None:
    client = new_client()
    client.bytes_received(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    assert drain(client) == [
        ConnectionTerminated(
            400, "the server sent data while no request was outstanding"
        )
    ]


def test_client_data_after_complete_response() -> None:
    client, _, _ = open_client()
    client.bytes_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nextra")
    events = drain(client)
    assert isinstance(events[0], HeadersReceived)
    assert events[-1] == ConnectionTerminated(
        400, "the server sent data while no request was outstanding"
    )

    client, _stream_id, _ = open_client(req(b"POST"), end_stream=False)
    client.bytes_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    client.bytes_received(b"extra")
    events = drain(client)
    assert events[-1] == ConnectionTerminated(
        400, "the server sent data after its response"
    )


def test_client_oversized_response_head() -> None:
    big = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    for pieces in ([big], [big[:500], big[500:1500], big[1500:]]):
        client = new_client(max_header_size=1024)
        client.submit_headers(1, req(), end_stream=True)
        for piece in pieces:
            client.bytes_received(piece)
        [event] = drain(client)
        assert isinstance(event, ConnectionTerminated) and event.error_code == 431


def test_client_too_many_response_fields() -> None:
    client = new_client(max_header_count=1)
    client.submit_headers(1, req(), end_stream=True)
    client.bytes_received(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n")
    assert drain(client) == [ConnectionTerminated(431, "more than 1 header fields")]


# -- caller misuse --------------------------------------------------------------


def snapshot(protocol: H11ClientProtocol | H11ServerProtocol) -> tuple[object, ...]:
    # The exchange's state, whichever implementation keeps it: h11's states,
    # or the httptools server's own flags.
    connection = getattr(protocol, "_h11", None)
    own = ("_request_seen", "_response_started", "_response_done", "_closed")
    return (
        protocol.is_available(),
        protocol.has_expired(),
        None if connection is None else connection.our_state,
        None if connection is None else connection.their_state,
        *(repr(getattr(protocol, name, None)) for name in own),
        protocol._stream_id,
        repr(protocol._sending),
    )


CLIENT_MISUSE: dict[str, Callable[[H11ClientProtocol], None]] = {
    "data before headers": lambda c: c.submit_data(1, b"x"),
    "headers on wrong stream": lambda c: c.submit_headers(3, req(), True),
    "headers on stream 0": lambda c: c.submit_headers(0, req(), True),
    "no :method": lambda c: c.submit_headers(1, req()[1:], True),
    "no :path": lambda c: c.submit_headers(1, req()[:3], True),
    "empty :method": lambda c: c.submit_headers(
        1, [(b":method", b""), *req()[1:]], True
    ),
    "no authority or host": lambda c: c.submit_headers(
        1, [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")], True
    ),
    "unknown pseudo": lambda c: c.submit_headers(
        1, [*req()[:4], (b":protocol", b"x")], True
    ),
    "repeated pseudo": lambda c: c.submit_headers(
        1, [*req()[:4], (b":path", b"/")], True
    ),
    "pseudo after field": lambda c: c.submit_headers(
        1, [*req()[:3], (b"a", b"b"), (b":path", b"/")], True
    ),
    "status in request": lambda c: c.submit_headers(1, [(b":status", b"200")], True),
    "authority differs from host": lambda c: c.submit_headers(
        1, req(b"GET", b"/", b"a", (b"host", b"b")), True
    ),
    "two hosts": lambda c: c.submit_headers(
        1, [*req()[:2], *req()[3:], (b"host", b"a"), (b"host", b"b")], True
    ),
    "CONNECT with path": lambda c: c.submit_headers(
        1, [(b":method", b"CONNECT"), (b":authority", b"a:1"), (b":path", b"/")]
    ),
    "CONNECT with body": lambda c: c.submit_headers(
        1,
        [(b":method", b"CONNECT"), (b":authority", b"a:1"), (b"content-length", b"1")],
    ),
    "length and chunked": lambda c: c.submit_headers(
        1,
        req(
            b"POST",
            b"/",
            b"h",
            (b"content-length", b"1"),
            (b"transfer-encoding", b"chunked"),
        ),
    ),
    "bad content-length": lambda c: c.submit_headers(
        1, req(b"POST", b"/", b"h", (b"content-length", b"ten"))
    ),
    "conflicting content-length": lambda c: c.submit_headers(
        1, req(b"POST", b"/", b"h", (b"content-length", b"1, 2"))
    ),
    "huge content-length": lambda c: c.submit_headers(
        1, req(b"POST", b"/", b"h", (b"content-length", b"9" * 30))
    ),
    "unsupported transfer-encoding": lambda c: c.submit_headers(
        1, req(b"POST", b"/", b"h", (b"transfer-encoding", b"gzip"))
    ),
    "bad field value": lambda c: c.submit_headers(
        1, req(b"GET", b"/", b"h", (b"x", b"a\nb")), True
    ),
    "bad method": lambda c: c.submit_headers(1, req(b"G T"), True),
    "length unmet at end": lambda c: c.submit_headers(
        1, req(b"POST", b"/", b"h", (b"content-length", b"3")), True
    ),
}


@pytest.mark.parametrize("name", sorted(CLIENT_MISUSE))
def test_client_misuse_before_request(name: str) -> None:
    client = new_client()
    before = snapshot(client)
    with pytest.raises(LocalProtocolError):
        CLIENT_MISUSE[name](client)
    assert snapshot(client) == before
    assert client.bytes_to_send() == b"" and drain(client) == []
    client.submit_headers(1, req(), end_stream=True)  # still usable
    assert client.bytes_to_send() == b"GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"


BODY_MISUSE: dict[str, Callable[[H11ClientProtocol], None]] = {
    "too much data": lambda c: c.submit_data(1, b"abcd"),
    "too little at end": lambda c: c.submit_data(1, b"b", end_stream=True),
    "trailers on length body": lambda c: c.submit_headers(1, [(b"x", b"y")], True),
    "data on wrong stream": lambda c: c.submit_data(3, b"a"),
}


@pytest.mark.parametrize("name", sorted(BODY_MISUSE))
def test_client_misuse_during_length_body(name: str) -> None:
    client, _, _ = open_client(
        req(b"PUT", b"/", b"h", (b"content-length", b"3")), False
    )
    client.submit_data(1, b"a")
    client.bytes_to_send()
    before = snapshot(client)
    with pytest.raises(LocalProtocolError):
        BODY_MISUSE[name](client)
    assert snapshot(client) == before and client.bytes_to_send() == b""
    client.submit_data(1, b"bc", end_stream=True)
    assert client.bytes_to_send() == b"bc"


CHUNKED_MISUSE: dict[str, Callable[[H11ClientProtocol], None]] = {
    "trailers without end": lambda c: c.submit_headers(1, [(b"x", b"y")]),
    "pseudo in trailers": lambda c: c.submit_headers(1, [(b":path", b"/")], True),
    "framing field in trailers": lambda c: c.submit_headers(
        1, [(b"content-length", b"1")], True
    ),
    "bad trailer value": lambda c: c.submit_headers(1, [(b"x", b"\x00")], True),
}


@pytest.mark.parametrize("name", sorted(CHUNKED_MISUSE))
def test_client_misuse_during_chunked_body(name: str) -> None:
    client, _, _ = open_client(req(b"POST"), False)
    before = snapshot(client)
    with pytest.raises(LocalProtocolError):
        CHUNKED_MISUSE[name](client)
    assert snapshot(client) == before and client.bytes_to_send() == b""
    client.submit_headers(1, [(b"x", b"y")], end_stream=True)
    assert client.bytes_to_send() == b"0\r\nx: y\r\n\r\n"


def test_client_misuse_after_request_ended() -> None:
    client, _, _ = open_client()
    before = snapshot(client)
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"x")
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, [(b"x", b"y")], True)
    assert snapshot(client) == before

    client, _, _ = open_client(req(b"POST"), False)
    client.submit_data(1, b"", end_stream=True)
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"x")
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, [(b"x", b"y")], True)


def request_server(
    raw: bytes = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
) -> H11ServerProtocol:
    server, events, _ = feed_server(raw)
    assert isinstance(events[0], HeadersReceived)
    return server


SERVER_MISUSE: dict[str, Callable[[H11ServerProtocol], None]] = {
    "data before headers": lambda s: s.submit_data(1, b"x"),
    "data on unknown stream": lambda s: s.submit_data(3, b"x"),
    "headers on unknown stream": lambda s: s.submit_headers(3, resp()),
    "no status": lambda s: s.submit_headers(1, [(b"server", b"x")]),
    "status not digits": lambda s: s.submit_headers(1, resp(b"abc")),
    "status too small": lambda s: s.submit_headers(1, resp(b"099")),
    "status too big": lambda s: s.submit_headers(1, resp(b"600")),
    "request pseudo in response": lambda s: s.submit_headers(
        1, [(b":status", b"200"), (b":path", b"/")]
    ),
    "interim ends stream": lambda s: s.submit_headers(1, resp(b"100"), True),
    "length unmet at end": lambda s: s.submit_headers(
        1, resp(b"200", (b"content-length", b"2")), True
    ),
    "bad field name": lambda s: s.submit_headers(1, resp(b"200", (b"a b", b"c"))),
    "bad content-length": lambda s: s.submit_headers(
        1, resp(b"200", (b"content-length", b"-1"))
    ),
}


@pytest.mark.parametrize("name", sorted(SERVER_MISUSE))
def test_server_misuse(name: str) -> None:
    server = request_server()
    before = snapshot(server)
    with pytest.raises(LocalProtocolError):
        SERVER_MISUSE[name](server)
    assert snapshot(server) == before and server.bytes_to_send() == b""
    server.submit_headers(1, resp(), end_stream=True)
    assert server.bytes_to_send() == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def test_server_misuse_without_request() -> None:
    server = new_server()
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, resp())
    with pytest.raises(LocalProtocolError):
        server.submit_data(1, b"x")
    assert server.bytes_to_send() == b""


def test_server_trailers_rules() -> None:
    server = request_server()
    server.submit_headers(1, resp(b"200", (b"content-length", b"1")))
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, [(b"x", b"y")], True)
    server.submit_data(1, b"!", end_stream=True)
    assert server.bytes_to_send().endswith(b"\r\n\r\n!")

    server = request_server(b"GET / HTTP/1.0\r\n\r\n")
    server.submit_headers(1, resp())
    with pytest.raises(LocalProtocolError):  # close-delimited: no trailers
        server.submit_headers(1, [(b"x", b"y")], True)
    server.submit_data(1, b"ok", end_stream=True)
    assert server.has_expired()


def test_submit_after_close_is_refused() -> None:
    client = new_client()
    client.connection_lost()
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, req(), True)
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"x")
    with pytest.raises(LocalProtocolError):
        client.get_available_stream_id()
    client.submit_stream_reset(1)
    client.submit_close()
    assert drain(client) == [ConnectionTerminated(0, "connection lost")]


def test_data_events_before_error_are_kept() -> None:
    _server, events, _ = feed_server(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\nQ\r\n"
    )
    assert isinstance(events[0], HeadersReceived)
    assert events[1] == DataReceived(1, b"ok")
    assert isinstance(events[2], ConnectionTerminated)


def test_empty_upgrade_field_proposes_nothing() -> None:
    server, events, _ = feed_server(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: ,\r\n\r\n")
    assert isinstance(events[0], HeadersReceived) and events[0].end_stream
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, resp(b"101"))
    server.submit_headers(1, resp(), end_stream=True)
    assert server.bytes_to_send().startswith(b"HTTP/1.1 200 OK")


def test_h11_refusal_is_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    client = H11ClientProtocol()  # h11's own, whichever implementation runs

    def refuse(event: object) -> None:
        raise h11.LocalProtocolError("refused")

    monkeypatch.setattr(client._h11, "send_with_data_passthrough", refuse)
    # A plain request would take the direct path (_h11_fast), past send.
    monkeypatch.setattr(H11ClientProtocol, "_fast", False)
    with pytest.raises(LocalProtocolError, match="refused") as caught:
        client.submit_headers(1, req(), end_stream=True)
    assert isinstance(caught.value.__cause__, h11.LocalProtocolError)
    assert drain(client) == [ConnectionTerminated(500, "h11 refused: refused")]
