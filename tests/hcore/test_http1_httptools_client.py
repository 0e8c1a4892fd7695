"""The HTTP/1.1 client on httptools, held to the h11 client's events.

The shared HTTP/1.1 tests run on this client too (``http1_helpers_implementation``);
here each scenario (requests sent, raw response bytes, the peer's close) is
played on both clients, whole and split at random, and must give the same
events: the same heads, bodies, ends and error codes.  Then what only this
client shows: the registry entry, the bytes it writes, and that body bytes
are handed on without another copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcore import LocalProtocolError
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    HeadersReceived,
    InformationalResponseReceived,
    TrailersReceived,
)
from hcore.protocols import HTTPOverTCPProtocol, default_registry
from hcore.protocols.http1 import HTTP1ClientFactory, HTTPToolsClientFactory
from hcore.protocols.http1._httptools_client import HTTPToolsClientProtocol
from tests.hcore.http1_helpers import normalize, req
from tests.hcore.pairs import Splitter, drain, whole
from tests.hcore.test_http1_stress import splitter

Fields = list[tuple[bytes, bytes]]
#: ("req", headers, end_stream) | ("data", bytes, end_stream) | ("recv", raw)
#: | ("eof",) | ("close",) | ("lost",)
Step = tuple[object, ...]

OK = b"HTTP/1.1 200 OK\r\n"


def play(
    make: Callable[[], HTTPOverTCPProtocol],
    steps: Sequence[Step],
    split: Splitter = whole,
    *,
    messages: bool = False,
) -> list[object]:
    """Play a scenario on a new client; return what it said, step by step."""
    client = make()
    out: list[object] = []
    for step in steps:
        kind = step[0]
        try:
            if kind == "req":
                stream_id = client.get_available_stream_id()
                client.submit_headers(stream_id, step[1], step[2])  # type: ignore[arg-type]
            elif kind == "data":
                client.submit_data(client_stream(client), step[1], step[2])  # type: ignore[arg-type]
            elif kind == "recv":
                for piece in split(step[1]):  # type: ignore[arg-type]
                    client.bytes_received(piece)
            elif kind == "eof":
                client.eof_received()
            elif kind == "close":
                client.submit_close()
            else:
                client.connection_lost()
        except LocalProtocolError:
            out.append("refused")
        events: list[Event] = normalize(drain(client))
        out.extend(
            (e.error_code, e.message if messages else "")
            if isinstance(e, ConnectionTerminated)
            else e
            for e in events
        )
        out.append(
            (client.is_available(), client.has_expired(), client.bytes_to_send())
        )
    return out


def client_stream(client: HTTPOverTCPProtocol) -> int:
    return int(getattr(client, "_stream_id"))  # noqa: B009


def h11_client() -> HTTPOverTCPProtocol:
    return HTTP1ClientFactory(max_header_size=1024, max_header_count=8)()


def tools_client() -> HTTPOverTCPProtocol:
    return HTTPToolsClientFactory(max_header_size=1024, max_header_count=8)()


GET: Step = ("req", req(), True)
HEAD: Step = ("req", req(b"HEAD"), True)
POST_OPEN: Step = ("req", req(b"POST"), False)
CONNECT: Step = ("req", [(b":method", b"CONNECT"), (b":authority", b"h:443")], False)
UPGRADE: Step = ("req", req(b"GET", b"/", b"h", (b"upgrade", b"websocket")), False)

SCENARIOS: dict[str, list[Step]] = {
    "keep-alive": [
        GET,
        ("recv", OK + b"Content-Length: 5\r\n\r\nhello"),
        GET,
        ("recv", OK + b"Content-Length: 0\r\n\r\n"),
        ("eof",),
    ],
    "chunked with trailers": [
        GET,
        (
            "recv",
            OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=1\r\n!\r\n"
            b"0\r\nX-T: 1\r\nX-U:  2 \r\n\r\n",
        ),
        GET,
        ("recv", OK + b"Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"),
    ],
    "read until close": [GET, ("recv", OK + b"Server: x\r\n\r\nabc"), ("eof",)],
    "HEAD with a length": [
        HEAD,
        ("recv", OK + b"Content-Length: 1234\r\n\r\n"),
        GET,
        ("recv", OK + b"Content-Length: 2\r\n\r\nok"),
    ],
    "HEAD chunked, then bytes": [
        HEAD,
        ("recv", OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
    ],
    "204 and 304 with lengths": [
        GET,
        ("recv", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
        GET,
        ("recv", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
        GET,
        ("recv", b"HTTP/1.1 204 No Content\r\n\r\nhello"),
    ],
    "1xx before the response": [
        GET,
        (
            "recv",
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
        ),
        ("recv", b"HTTP/1.1 199 Odd\r\nContent-Length: 5\r\n\r\n"),
        ("recv", OK + b"Content-Length: 1\r\n\r\nx"),
    ],
    "early response while sending": [
        POST_OPEN,
        ("data", b"abc", False),
        ("recv", b"HTTP/1.1 413 Too Large\r\nContent-Length: 2\r\n\r\nno"),
        ("data", b"def", True),
        GET,
    ],
    "early response, then bytes": [
        POST_OPEN,
        ("recv", OK + b"Content-Length: 0\r\n\r\n"),
        ("recv", b"more"),
    ],
    "early response, then close": [
        POST_OPEN,
        ("recv", OK + b"Content-Length: 0\r\n\r\n"),
        ("eof",),
    ],
    "bytes after the response": [
        GET,
        ("recv", OK + b"Content-Length: 1\r\n\r\nxEXTRA"),
    ],
    "unsolicited bytes": [("recv", b"HTTP/1.1 408 Timeout\r\n\r\n")],
    "101 to an upgrade": [
        UPGRADE,
        (
            "recv",
            b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n"
            b"Connection: upgrade\r\n\r\nraw1",
        ),
        ("recv", b"raw2"),
        ("data", b"up", True),
        ("eof",),
    ],
    "101 without connection option": [
        UPGRADE,
        ("recv", b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\nraw"),
    ],
    "upgrade refused": [
        UPGRADE,
        ("recv", OK + b"Content-Length: 2\r\n\r\nno"),
        GET,
    ],
    "101 nobody asked for": [GET, ("recv", b"HTTP/1.1 101 Switching\r\n\r\n")],
    "CONNECT accepted": [
        CONNECT,
        (
            "recv",
            b"HTTP/1.1 200 Connection established\r\nContent-Length: 3\r\n\r\n"
            b"server first",
        ),
        ("data", b"client", False),
        ("lost",),
    ],
    "CONNECT refused": [
        CONNECT,
        ("recv", b"HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\nno"),
        ("data", b"", True),
        GET,
        ("recv", OK + b"Content-Length: 0\r\n\r\n"),
    ],
    "HTTP/1.0 keep-alive": [
        GET,
        (
            "recv",
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        ),
    ],
    "HTTP/1.0 keep-alive, then bytes": [
        GET,
        ("recv", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"),
        ("recv", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"),
    ],
    "HTTP/1.0 length, then bytes": [
        GET,
        (
            "recv",
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n"
            b"\r\nxHTTP/1.0 200 OK\r\n\r\n",
        ),
    ],
    "closing response, then bytes": [
        GET,
        ("recv", OK + b"Connection: close\r\nContent-Length: 0\r\n\r\nextra"),
        ("recv", b"more"),
    ],
    "closing body, then bytes": [
        GET,
        ("recv", OK + b"Connection: close\r\nContent-Length: 1\r\n\r\nxextra"),
    ],
    "close asked in a tunnel": [
        CONNECT,
        ("recv", b"HTTP/1.1 200 OK\r\n\r\n"),
        ("close",),
        ("data", b"", False),
        ("data", b"x", True),
        ("data", b"y", False),
        ("eof",),
    ],
    "HTTP/1.0 until close": [GET, ("recv", b"HTTP/1.0 200 OK\r\n\r\nold"), ("eof",)],
    "Connection: close": [
        GET,
        ("recv", OK + b"Connection: keep-alive, close\r\nContent-Length: 0\r\n\r\n"),
    ],
    "request with close": [
        ("req", req(b"GET", b"/", b"h", (b"connection", b"close")), True),
        ("recv", OK + b"Content-Length: 0\r\n\r\n"),
    ],
    "close asked while running": [
        GET,
        ("close",),
        ("recv", OK + b"Content-Length: 2\r\n\r\nok"),
    ],
    "oversized head": [GET, ("recv", OK + b"X-Big: " + b"b" * 2000 + b"\r\n\r\n")],
    "oversized incomplete head": [GET, ("recv", OK + b"X-Big: " + b"b" * 2000)],
    "too many fields": [
        GET,
        ("recv", OK + b"".join(b"X-%d: v\r\n" % i for i in range(9)) + b"\r\n"),
    ],
    "too many trailers": [
        GET,
        (
            "recv",
            OK
            + b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
            + b"".join(b"T-%d: v\r\n" % i for i in range(9))
            + b"\r\n",
        ),
    ],
    "oversized trailers": [
        GET,
        (
            "recv",
            OK
            + b"Transfer-Encoding: chunked\r\n\r\n0\r\nT: "
            + b"t" * 2000
            + b"\r\n\r\n",
        ),
    ],
    "gzip coding": [GET, ("recv", OK + b"Transfer-Encoding: gzip\r\n\r\nabc")],
    "two codings": [
        GET,
        (
            "recv",
            OK + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
    ],
    "bad chunk": [GET, ("recv", OK + b"Transfer-Encoding: chunked\r\n\r\nxyz\r\n")],
    "garbage": [GET, ("recv", b"NOT HTTP AT ALL\r\n\r\n")],
    "bad status": [GET, ("recv", b"HTTP/1.1 2000 OK\r\n\r\n")],
    "bad field": [GET, ("recv", OK + b"bad header\r\n\r\n")],
    "close before the head": [GET, ("eof",)],
    "close in the head": [GET, ("recv", OK + b"A: b\r\n"), ("eof",)],
    "close in the body": [GET, ("recv", OK + b"Content-Length: 5\r\n\r\nab"), ("eof",)],
    "close in a chunk": [
        GET,
        ("recv", OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab"),
        ("eof",),
    ],
    "close between exchanges": [
        GET,
        ("recv", OK + b"Content-Length: 0\r\n\r\n"),
        ("eof",),
    ],
    "lost mid-exchange": [GET, ("recv", OK), ("lost",)],
    "lost when idle": [("lost",)],
    "chunked upload": [
        POST_OPEN,
        ("data", b"abc", False),
        ("data", b"", False),
        ("req", [(b"x-t", b"1")], True),
        ("recv", OK + b"Content-Length: 0\r\n\r\n"),
    ],
    "length upload": [
        ("req", req(b"PUT", b"/", b"h", (b"content-length", b"3")), False),
        ("data", b"abcd", False),
        ("data", b"abc", True),
        ("data", b"x", True),
        ("recv", OK + b"Content-Length: 0\r\n\r\n"),
    ],
    "misuse": [
        ("data", b"x", False),
        ("req", [(b":method", b"GET")], True),
        GET,
        GET,
        ("req", [(b"x-t", b"1")], True),
    ],
}

#: Scenarios where llhttp is stricter than h11 (see the class docstring).
STRICTER = {
    "both framings": [
        GET,
        (
            "recv",
            OK + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
    ],
    "repeated length": [
        GET,
        ("recv", OK + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nok"),
    ],
    "folded field": [GET, ("recv", OK + b"A: b\r\n c\r\nContent-Length: 0\r\n\r\n")],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_events_as_h11(name: str) -> None:
    assert play(tools_client, SCENARIOS[name]) == play(h11_client, SCENARIOS[name])


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(sorted(SCENARIOS)),
    st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=8),
)
def test_same_events_as_h11_whatever_the_split(name: str, sizes: list[int]) -> None:
    steps = SCENARIOS[name]
    assert play(tools_client, steps, splitter(sizes)) == play(h11_client, steps)


@pytest.mark.parametrize("name", sorted(STRICTER))
def test_stricter_than_h11_where_llhttp_is(name: str) -> None:
    said = play(tools_client, STRICTER[name])
    terminated = [s for s in said if isinstance(s, tuple) and len(s) == 2]
    assert terminated == [(400, "")]


def test_same_messages_as_h11_where_they_matter() -> None:
    for name in (
        "keep-alive",
        "read until close",
        "bytes after the response",
        "early response, then bytes",
        "unsolicited bytes",
        "Connection: close",
        "close asked while running",
        "too many fields",
        "too many trailers",
        "101 to an upgrade",
        "lost mid-exchange",
    ):
        steps = SCENARIOS[name]
        assert play(tools_client, steps, messages=True) == play(
            h11_client, steps, messages=True
        ), name


def test_registered_as_the_client_of_httptools() -> None:
    factory = default_registry.tcp_client_factory("1.1", "httptools")
    assert isinstance(factory, HTTPToolsClientFactory)
    assert isinstance(factory(), HTTPToolsClientProtocol)
    assert factory.alpn_protocols == ["http/1.1"]
    with pytest.raises(LocalProtocolError):
        factory(alpn_protocol="h2")
    with pytest.raises(ValueError, match="max_header_size"):
        HTTPToolsClientFactory(max_header_size=0)


@pytest.mark.parametrize(
    "steps",
    [
        [("req", req(b"POST", b"/p?q=1", b"h:8080", (b"X-Case", b"Kept")), False)],
        [("req", req(b"GET", b"http://h/abs", b"h"), True)],
        [CONNECT],
        [UPGRADE],
    ],
)
def test_writes_the_bytes_h11_writes(steps: list[Step]) -> None:
    body: list[Step] = [("data", b"chunk", False), ("req", [(b"x-t", b"1")], True)]
    if steps[0][2] is False and steps != [CONNECT]:
        steps = steps + body
    assert play(tools_client, steps) == play(h11_client, steps)


def test_body_bytes_are_handed_on_without_another_copy() -> None:
    # llhttp's on_body slices the input once; the events carry those bytes.
    client = HTTPToolsClientProtocol()
    client.submit_headers(1, req(), end_stream=True)
    body = bytes(range(256)) * 4096
    client.bytes_received(OK + b"Content-Length: %d\r\n\r\n" % (2 * len(body)))
    client.bytes_received(body)
    client.bytes_received(bytearray(body))  # type: ignore[arg-type]  # any buffer
    events = drain(client)
    assert isinstance(events[0], HeadersReceived)
    pieces = [e.data for e in events if isinstance(e, DataReceived)]
    assert all(type(p) is bytes for p in pieces) and b"".join(pieces) == body * 2
    assert events[-1] == DataReceived(1, body, end_stream=True)
    assert client.is_available()
    # Bytes given to send are queued as they are, other buffers as bytes.
    client.submit_headers(3, req(b"POST"))
    client.bytes_to_send()
    client.submit_data(3, body)
    assert client.bytes_to_send() == b"100000\r\n" + body + b"\r\n"
    client.submit_data(3, bytearray(b"ab"), end_stream=True)  # type: ignore[arg-type]
    assert client.bytes_to_send() == b"2\r\nab\r\n0\r\n\r\n"


def test_interim_then_trailers_event_kinds() -> None:
    said = play(tools_client, SCENARIOS["1xx before the response"])
    kinds = [type(s) for s in said if isinstance(s, Event)]
    assert kinds.count(InformationalResponseReceived) == 3
    said = play(tools_client, SCENARIOS["chunked with trailers"])
    assert TrailersReceived(1, ((b"x-t", b"1"), (b"x-u", b"2"))) in said
