"""The h11 server's direct paths give what h11's own calls give.

:mod:`hcore.protocols.http1._h11_fast` parses plain request and response
heads and Content-Length bodies, and writes plain heads, bodies and ends,
without ``h11.Connection.next_event`` / ``send``.  Every test here runs
the same script on two servers (test_http1_h11_fast_client.py: on two
clients), one taking the direct paths and one going through h11 for
everything, and compares after each step:
the bytes to send (byte for byte), the events, the exception a refused
call raises, and h11's whole connection state (both roles' states,
keep-alive, switch proposals, request method, peer version, 100-continue,
reader and writer with their counters, the receive buffer).  The tables
cover the framing rules (Content-Length, chunked, HEAD, 1xx, 204/304,
``Connection: close``, keep-alive, HTTP/1.0 peers) and bad input;
hypothesis tests mix response fields, and split pipelined requests, at
random.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import cast

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcore._errors import LocalProtocolError
from hcore.events import Event, HeadersReceived
from hcore.protocols.http1 import H11ServerProtocol
from hcore.protocols.http1._h11_fast import FAST_H11
from hcore.protocols.http1._limits import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_PIPELINED_SIZE,
)
from tests.hcore.h11_fast_helpers import Fields, PlainServer, Step, h11_state, spy
from tests.hcore.pairs import drain


def act(server: H11ServerProtocol, step: Step) -> tuple[object, ...]:
    """Run one step; return what came of it."""
    kind = step[0]
    error: tuple[str, str] | None = None
    try:
        if kind == "recv":
            server.bytes_received(cast(bytes, step[1]))
        elif kind == "eof":
            server.eof_received()
        elif kind == "close":
            server.submit_close()
        elif kind == "headers":
            server.submit_headers(
                server._stream_id, cast(Fields, step[1]), cast(bool, step[2])
            )
        else:
            assert kind == "data"
            server.submit_data(
                server._stream_id, cast(bytes, step[1]), cast(bool, step[2])
            )
    except LocalProtocolError as exc:
        error = (type(exc).__name__, str(exc))
    events: list[Event] = drain(server)
    return (
        error,
        server.bytes_to_send(),
        events,
        h11_state(server._h11),
        server._stream_id,
        server.has_expired(),
    )


def compare(
    steps: Sequence[Step],
    *,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
    max_pipelined_size: int = DEFAULT_MAX_PIPELINED_SIZE,
) -> list[tuple[object, ...]]:
    """Run the script on both servers, comparing after every step."""
    fast, plain = (
        server_class(
            max_header_size=max_header_size,
            max_header_count=max_header_count,
            max_pipelined_size=max_pipelined_size,
        )
        for server_class in (H11ServerProtocol, PlainServer)
    )
    results = []
    for step in steps:
        got, expected = act(fast, step), act(plain, step)
        assert got == expected, step
        results.append(got)
    return results


OK = [(b":status", b"200"), (b"content-length", b"2")]


def answered(*requests: bytes) -> list[Step]:
    """Receive the requests (one read), then answer each with ``OK``."""
    steps: list[Step] = [("recv", b"".join(requests))]
    for _ in requests:
        steps += [("headers", OK, False), ("data", b"ok", True)]
    return steps


GET = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"

REQUESTS: dict[str, bytes] = {
    "plain GET": b"GET /hello HTTP/1.1\r\nHost: localhost:8000\r\n"
    b"User-Agent: wrk\r\nAccept: */*\r\n\r\n",
    "upper-case names": b"GET / HTTP/1.1\r\nHOST: h\r\nX-Thing: A\r\n\r\n",
    "whitespace around values": b"GET / HTTP/1.1\r\nHost:h\r\nX-A: \t b c \t\r\n\r\n",
    "empty value": b"GET / HTTP/1.1\r\nHost: h\r\nX-A:\r\n\r\n",
    "empty Host": b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
    "content": b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    "content in pieces": b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhe",
    "empty content": b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    "length with zeros": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 002\r\n\r\nab",
    "length list": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\n\r\nab",
    "two lengths": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "conflicting lengths": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
    b"Content-Length: 3\r\n\r\nabc",
    "bad length": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    "huge length": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
    + b"9" * 21
    + b"\r\n\r\n",
    "chunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
    "gzip coding": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
    "length and coding": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "asks to close": b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    "asks to close among options": b"GET / HTTP/1.1\r\nHost: h\r\n"
    b"Connection: keep-alive, Close\r\n\r\n",
    "keep-alive": b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
    "expect": b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
    b"Content-Length: 2\r\n\r\n",
    "upgrade": b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
    b"Upgrade: websocket\r\n\r\n",
    "empty upgrade": b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade:\r\n\r\n",
    "connect": b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    "HTTP/1.0": b"GET / HTTP/1.0\r\n\r\n",
    "HTTP/1.0 keep-alive": b"GET / HTTP/1.0\r\nHost: h\r\n"
    b"Connection: keep-alive\r\n\r\n",
    "HTTP/2.0": b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "no Host": b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
    "two Hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bad Host": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "folded line": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n  c\r\n\r\n",
    "fold first": b"GET / HTTP/1.1\r\n c\r\nHost: h\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: h\n\n",
    "mixed line ends": b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
    "LF LF inside": b"GET / HTTP/1.1\r\nHost: h\n\nX: y\r\n\r\n",
    "lone CR": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
    "leading CRLF": b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "leading LF": b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n",
    "bad request line": b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    "lower-case version": b"GET / http/1.1\r\nHost: h\r\n\r\n",
    "control character": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
    "NUL": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    "DEL": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n",
    "obs-text": b"GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n",
    "absolute form": b"GET http://example.com/x?y HTTP/1.1\r\nHost: h\r\n\r\n",
    "absolute form with userinfo": b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
    "asterisk": b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "asterisk for GET": b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
    "HEAD": b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
    "incomplete": b"GET / HTTP/1.1\r\nHost: h\r\n",
    "only a line": b"GET / HTTP/1.1",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "pipelined": GET
    + b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx"
    + GET,
    "pipelined then bad": GET + b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}


def test_the_direct_paths_are_on_for_this_h11() -> None:
    # The installed h11 is one the direct paths were checked against (else
    # the tests here would compare h11 with itself): a new h11 release must
    # be checked, and added to FAST_H11, when the project moves to it.
    assert FAST_H11
    assert H11ServerProtocol._fast


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_requests_parse_alike(name: str) -> None:
    compare(answered(REQUESTS[name]))


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_requests_split_in_two_parse_alike(name: str) -> None:
    raw = REQUESTS[name]
    for cut in (1, len(raw) // 2, len(raw) - 1):
        compare([("recv", raw[:cut]), ("recv", raw[cut:]), *answered(b"")[1:]])


@pytest.mark.parametrize("name", ["plain GET", "content in pieces", "incomplete"])
def test_eof_after_request_alike(name: str) -> None:
    compare([("recv", REQUESTS[name]), ("eof",), ("headers", OK, False)])


def test_limits_refuse_alike() -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(5))
    compare(
        answered(b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n"),
        max_header_count=4,
    )
    compare(answered(REQUESTS["plain GET"]), max_header_size=40)
    compare(answered(GET * 4), max_pipelined_size=len(GET))


def test_pipelined_requests_keep_their_order() -> None:
    results = compare(answered(*[GET.replace(b"/a", b"/%d" % i) for i in range(5)]))
    heads = [
        event
        for result in results
        for event in cast(list[Event], result[2])
        if isinstance(event, HeadersReceived)
    ]
    assert [dict(head.headers)[b":path"] for head in heads] == [
        b"/%d" % i for i in range(5)
    ]


def test_request_content_in_pieces_after_the_response() -> None:
    compare(
        [
            ("recv", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab"),
            ("headers", OK, False),
            ("data", b"ok", True),
            ("recv", b"cd" + GET),
            ("headers", OK, True),
        ]
    )


# -- responses ----------------------------------------------------------------------


def _head_only(*fields: tuple[bytes, bytes], end: bool) -> tuple[bytes, list[Step]]:
    """A GET answered by a 200 head with ``fields`` and nothing after it."""
    return GET, [("headers", [(b":status", b"200"), *fields], end)]


#: name: (request, steps after it)
RESPONSES: dict[str, tuple[bytes, list[Step]]] = {
    "length": (GET, [("headers", OK, False), ("data", b"ok", True)]),
    "length in pieces": (
        GET,
        [
            ("headers", [(b":status", b"200"), (b"content-length", b"5")], False),
            ("data", b"he", False),
            ("data", b"", False),
            ("data", b"llo", False),
            ("data", b"", True),
        ],
    ),
    "length with zeros": _head_only((b"content-length", b"02"), end=False),
    "huge length": _head_only((b"content-length", b"9" * 20), end=False),
    "length list": _head_only((b"content-length", b"2, 2"), end=False),
    "two lengths": _head_only(
        (b"content-length", b"2"), (b"Content-Length", b"2"), end=False
    ),
    "chunked": (
        GET,
        [
            ("headers", [(b":status", b"200"), (b"x-a", b"b")], False),
            ("data", b"abc", False),
            ("data", b"", False),
            ("data", b"de", True),
        ],
    ),
    "explicit chunked": (
        GET,
        [
            (
                "headers",
                [
                    (b":status", b"201"),
                    (b"Transfer-Encoding", b"Chunked"),
                    (b"x", b"y"),
                ],
                False,
            ),
            ("data", b"abc", True),
        ],
    ),
    "two codings": _head_only(
        (b"transfer-encoding", b"chunked"),
        (b"transfer-encoding", b"chunked"),
        end=False,
    ),
    "gzip coding": _head_only((b"transfer-encoding", b"gzip"), end=False),
    "length and coding": _head_only(
        (b"content-length", b"1"), (b"transfer-encoding", b"chunked"), end=False
    ),
    "trailers": (
        GET,
        [
            ("headers", [(b":status", b"200")], False),
            ("data", b"data", False),
            ("headers", [(b"x-checksum", b"1")], True),
        ],
    ),
    "ended at once": (GET, [("headers", [(b":status", b"404")], True)]),
    "no content": (GET, [("headers", [(b":status", b"204")], True)]),
    "204 with length": (
        GET,
        [("headers", [(b":status", b"204"), (b"content-length", b"5")], True)],
    ),
    "304 with coding": (
        GET,
        [("headers", [(b":status", b"304"), (b"transfer-encoding", b"chunked")], True)],
    ),
    "upper-case names": _head_only((b"Content-Type", b"a/b"), (b"X-Y", b""), end=True),
    "Host in a response": _head_only((b"x", b"1"), (b"host", b"h"), end=True),
    "keeps alive": _head_only((b"connection", b"keep-alive"), end=True),
    "closes": _head_only((b"Connection", b"Close"), end=True),
    "closes among options": _head_only((b"connection", b"x, close"), end=True),
    "closing side": (GET, [("close",), ("headers", OK, False), ("data", b"ok", True)]),
    "bad name": _head_only((b"a b", b"v"), end=True),
    "bad value": _head_only((b"a", b"x\r\ny"), end=True),
    "value with spaces around": _head_only((b"a", b" x"), end=True),
    "text fields": (
        GET,
        [("headers", cast(Fields, [(b":status", b"200"), ("x-a", "b")]), True)],
    ),
    "bytearray value": (
        GET,
        [("headers", [(b":status", b"200"), (b"x", bytearray(b"y"))], True)],
    ),
    "bad status": (GET, [("headers", [(b":status", b"20")], True)]),
    "unregistered status": (GET, [("headers", [(b":status", b"299")], True)]),
    "too much content": (
        GET,
        [("headers", OK, False), ("data", b"abc", False), ("data", b"ok", True)],
    ),
    "too little content": (GET, [("headers", OK, False), ("data", b"o", True)]),
    "data after the end": (
        GET,
        [("headers", OK, True), ("data", b"x", False)],
    ),
    "HEAD": (REQUESTS["HEAD"], [("headers", OK, True)]),
    "HEAD without length": (
        REQUESTS["HEAD"],
        [("headers", [(b":status", b"200")], True)],
    ),
    "HTTP/1.0 close-delimited": (
        REQUESTS["HTTP/1.0"],
        [("headers", [(b":status", b"200")], False), ("data", b"x", True)],
    ),
    "HTTP/1.0 with length": (
        REQUESTS["HTTP/1.0 keep-alive"],
        [("headers", OK, False), ("data", b"ok", True)],
    ),
    "request asked to close": (
        REQUESTS["asks to close"],
        [("headers", OK, False), ("data", b"ok", True)],
    ),
    "interim then final": (
        REQUESTS["expect"],
        [
            ("headers", [(b":status", b"100")], False),
            ("recv", b"ab"),
            ("headers", OK, False),
            ("data", b"ok", True),
            ("recv", GET),
            ("headers", OK, True),
        ],
    ),
    "body without waiting for continue": (
        REQUESTS["expect"],
        [("recv", b"a"), ("recv", b"b"), ("headers", OK, False), ("data", b"ok", True)],
    ),
    "final without continue": (
        REQUESTS["expect"],
        [("headers", OK, False), ("data", b"ok", True), ("recv", b"ab" + GET)],
    ),
    "upgrade": (
        REQUESTS["upgrade"],
        [
            ("headers", [(b":status", b"101"), (b"upgrade", b"websocket")], False),
            ("data", b"raw", False),
        ],
    ),
    "refused upgrade": (
        REQUESTS["upgrade"],
        [("headers", OK, False), ("data", b"ok", True), ("recv", GET)],
    ),
    "connect": (
        CONNECT := REQUESTS["connect"],
        [("headers", [(b":status", b"200")], False)],
    ),
    "refused connect": (
        CONNECT,
        [("headers", [(b":status", b"403")], True), ("recv", GET)],
    ),
    "before the request body": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na",
        [
            ("headers", [(b":status", b"200")], False),
            ("data", b"xy", True),
            ("recv", b"bc"),
            ("recv", GET),
            ("headers", OK, True),
        ],
    ),
    "peer closed before the response": (
        GET,
        [("eof",), ("headers", OK, False), ("data", b"ok", True)],
    ),
}


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_responses_alike(name: str) -> None:
    request, steps = RESPONSES[name]
    compare([("recv", request), *steps])


def test_many_distinct_fields_alike() -> None:
    # More names and lines than the direct path remembers.
    block = [(b":status", b"200")] + [(b"x-%d" % i, b"%d" % i) for i in range(700)]
    compare([("recv", GET * 2), ("headers", block, True), ("headers", block, True)])


@pytest.mark.parametrize("name", ["length", "chunked", "closes", "trailers"])
def test_responses_alike_over_several_exchanges(name: str) -> None:
    _, steps = RESPONSES[name]
    compare([("recv", GET * 3), *steps, *steps, *steps])


def test_plain_exchanges_bypass_h11s_event_machinery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    for name in ("next_event", "send_with_data_passthrough", "start_next_cycle"):
        monkeypatch.setattr(h11.Connection, name, spy(calls, name))
    server = H11ServerProtocol()
    for body in (b"ok", None):
        server.bytes_received(REQUESTS["plain GET"])
        event = drain(server)[0]
        assert isinstance(event, HeadersReceived) and event.end_stream
        if body is None:
            # Chunked.
            server.submit_headers(event.stream_id, [(b":status", b"200")])
            server.submit_data(event.stream_id, b"abc", end_stream=True)
        else:
            server.submit_headers(event.stream_id, OK)
            server.submit_data(event.stream_id, body, end_stream=True)
    assert server.bytes_to_send() == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert calls == []


# -- random response fields --------------------------------------------------------

_NAMES = [
    b"content-length",
    b"Content-Length",
    b"transfer-encoding",
    b"Transfer-Encoding",
    b"connection",
    b"host",
    b"x-a",
    b"X-B",
    b"bad name",
]
_VALUES = [
    b"0",
    b"3",
    b"003",
    b"3, 3",
    b"chunked",
    b"CHUNKED",
    b"gzip",
    b"close",
    b"keep-alive",
    b"Keep-Alive, Upgrade",
    b"",
    b"a b",
    b" x",
    b"x\x01",
]
_REQUEST_CHOICES = [
    GET,
    REQUESTS["HEAD"],
    REQUESTS["HTTP/1.0"],
    REQUESTS["asks to close"],
    REQUESTS["content"],
    REQUESTS["content in pieces"],
    REQUESTS["expect"],
    REQUESTS["upgrade"],
    REQUESTS["connect"],
]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    request=st.sampled_from(_REQUEST_CHOICES),
    status=st.sampled_from([b"100", b"101", b"200", b"204", b"304", b"404", b"599"]),
    fields=st.lists(
        st.tuples(st.sampled_from(_NAMES), st.sampled_from(_VALUES)), max_size=4
    ),
    end_stream=st.booleans(),
    pieces=st.lists(st.sampled_from([b"", b"a", b"abc"]), max_size=3),
    close_first=st.booleans(),
    then=st.sampled_from([b"", GET, b"xyz"]),
)
def test_random_responses_alike(
    request: bytes,
    status: bytes,
    fields: Fields,
    end_stream: bool,
    pieces: list[bytes],
    close_first: bool,
    then: bytes,
) -> None:
    steps: list[Step] = [("recv", request)]
    if close_first:
        steps.append(("close",))
    steps.append(("headers", [(b":status", status), *fields], end_stream))
    steps += [("data", piece, False) for piece in pieces]
    steps.append(("data", b"", True))
    if then:
        steps += [("recv", then), ("headers", OK, False), ("data", b"ok", True)]
    compare(steps)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(st.sampled_from(sorted(REQUESTS)), min_size=1, max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=4),
    eof=st.booleans(),
)
def test_random_requests_in_random_pieces_alike(
    names: list[str], cuts: list[int], eof: bool
) -> None:
    raw = b"".join(REQUESTS[name] for name in names)
    bounds = sorted({cut for cut in cuts if cut < len(raw)} | {0, len(raw)})
    steps: list[Step] = [("recv", raw[start:end]) for start, end in pairwise(bounds)]
    if eof:
        steps.append(("eof",))
    for _ in names:
        steps += [("headers", OK, False), ("data", b"ok", True)]
    compare(steps)
