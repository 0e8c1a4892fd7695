"""The h11 client's direct paths give what h11's own calls give.

The client's half of test_http1_h11_fast.py (whose docstring says how):
the same script runs on a client taking the direct paths of
:mod:`hcore.protocols.http1._h11_fast_client` and on one going through h11
for everything, and bytes, events, refusals and h11's state are compared
after every step.  The responses cover the framing rules a client reads
(Content-Length, chunked, close-delimited, HEAD, CONNECT, 1xx, 204/304,
``Connection: close``, HTTP/1.0) and bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import h11
import pytest

from hcore._errors import LocalProtocolError
from hcore.events import DataReceived, Event, HeadersReceived
from hcore.protocols.http1 import H11ClientProtocol
from hcore.protocols.http1._limits import DEFAULT_MAX_HEADER_SIZE
from tests.hcore.h11_fast_helpers import Fields, PlainClient, Step, h11_state, spy
from tests.hcore.pairs import drain


def client_act(client: H11ClientProtocol, step: Step) -> tuple[object, ...]:
    """Run one client step; return what came of it."""
    kind = step[0]
    error: tuple[str, str] | None = None
    try:
        if kind == "recv":
            client.bytes_received(cast(bytes, step[1]))
        elif kind == "eof":
            client.eof_received()
        elif kind == "close":
            client.submit_close()
        elif kind == "request":
            client.submit_headers(
                client._stream_id, cast(Fields, step[1]), cast(bool, step[2])
            )
        else:
            assert kind == "data"
            client.submit_data(
                client._stream_id, cast(bytes, step[1]), cast(bool, step[2])
            )
    except LocalProtocolError as exc:
        error = (type(exc).__name__, str(exc))
    events: list[Event] = drain(client)
    return (
        error,
        client.bytes_to_send(),
        events,
        h11_state(client._h11),
        client._stream_id,
        client.has_expired(),
        client.is_available(),
    )


def client_compare(
    steps: Sequence[Step], *, max_header_size: int = DEFAULT_MAX_HEADER_SIZE
) -> list[tuple[object, ...]]:
    """Run the script on both clients, comparing after every step."""
    fast = H11ClientProtocol(max_header_size=max_header_size)
    plain = PlainClient(max_header_size=max_header_size)
    results = []
    for step in steps:
        got, expected = client_act(fast, step), client_act(plain, step)
        assert got == expected, step
        results.append(got)
    return results


def request(method: bytes = b"GET", *fields: tuple[bytes, bytes]) -> Fields:
    """A request block for ``/p`` on ``h``."""
    return [
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", b"h"),
        (b":path", b"/p"),
        *fields,
    ]


HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"

#: Responses to a GET.
CLIENT_RESPONSES: dict[str, bytes] = {
    "length": HELLO,
    "empty body": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "no reason": b"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",
    "empty reason": b"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\nx",
    "odd reason": b"HTTP/1.1 299 Fine \t Thanks\r\ncontent-length: 1\r\n\r\nx",
    "keep-alive": b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
    b"Content-Length: 1\r\n\r\nx",
    "closes": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\nab\r\n0\r\n\r\n",
    "close-delimited": b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
    "HTTP/1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
    "no content": b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
    "not modified": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
    "interim first": b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + HELLO,
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
    b"Content-Length: 1\r\n\r\nx",
    "length list": b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx",
    "bad length": b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nx",
    "length and coding": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad status line": b"HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\nx",
    "bad field": b"HTTP/1.1 200 OK\r\nX : y\r\nContent-Length: 1\r\n\r\nx",
    "folded field": b"HTTP/1.1 200 OK\r\nX: y\r\n z\r\nContent-Length: 1\r\n\r\nx",
    "bare LF": b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
    "control character": b"HTTP/1.1 200 OK\r\nX: \x01\r\nContent-Length: 1\r\n\r\nx",
    "more than the body": HELLO + b"extra",
    "two responses": HELLO + HELLO,
    "garbage": b"\x00\x01\x02\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(CLIENT_RESPONSES))
def test_client_responses_alike(name: str) -> None:
    raw = CLIENT_RESPONSES[name]
    steps: list[Step] = [("request", request(), True), ("recv", raw)]
    client_compare([*steps, ("request", request(), True), ("recv", HELLO)])
    # Split: the head, then the body in two.
    head = raw.find(b"\r\n\r\n") + 4 if b"\r\n\r\n" in raw else len(raw) // 2
    cuts = sorted({1, head, (head + len(raw)) // 2})
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    client_compare(
        [
            ("request", request(), True),
            *[("recv", piece) for piece in pieces],
            ("eof",),
        ]
    )


@pytest.mark.parametrize(
    "steps",
    [
        # The body ends with the peer's close, or is cut short by it.
        [("request", request(), True), ("recv", HELLO[:-2]), ("eof",)],
        [("request", request(), True), ("recv", HELLO), ("eof",)],
        # HEAD and CONNECT responses have no content whatever they say.
        [("request", request(b"HEAD"), True), ("recv", HELLO[:-5] + HELLO)],
        [
            ("request", [(b":method", b"CONNECT"), (b":authority", b"h:1")], False),
            ("recv", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nraw"),
            ("data", b"up", True),
        ],
        # A request with content, answered before it ends.
        [
            ("request", request(b"POST", (b"content-length", b"4")), False),
            ("data", b"ab", False),
            ("recv", HELLO),
            ("data", b"cd", True),
            ("request", request(), True),
        ],
        # Chunked, with trailers.
        [
            ("request", request(b"POST"), False),
            ("data", b"abc", False),
            ("data", b"", False),
            ("request", [(b"x-sum", b"1")], True),
            ("recv", HELLO),
        ],
        # 100-continue.
        [
            (
                "request",
                request(
                    b"POST", (b"expect", b"100-continue"), (b"content-length", b"1")
                ),
                False,
            ),
            ("recv", b"HTTP/1.1 100 Continue\r\n\r\n"),
            ("data", b"x", True),
            ("recv", HELLO),
        ],
        # Upgrade, switched and refused.
        [
            ("request", request(b"GET", (b"upgrade", b"ws")), True),
            ("recv", b"HTTP/1.1 101 Switching\r\nUpgrade: ws\r\n\r\nraw"),
        ],
        [
            ("request", request(b"GET", (b"upgrade", b"ws")), True),
            ("recv", HELLO),
            ("request", request(), True),
        ],
        # The request closes the connection; the client closes.
        [
            ("request", request(b"GET", (b"connection", b"close")), True),
            ("recv", HELLO),
        ],
        [("request", request(), True), ("close",), ("recv", HELLO)],
    ],
)
def test_client_exchanges_alike(steps: list[Step]) -> None:
    client_compare(steps)


@pytest.mark.parametrize(
    "block",
    [
        request(b"GET", (b"x-a", b"b"), (b"X-Upper", b"c"), (b"x-empty", b"")),
        request(b"PUT"),
        request(b"POST", (b"content-length", b"003")),
        request(b"POST", (b"content-length", b"3, 3")),
        request(b"POST", (b"content-length", b"3"), (b"content-length", b"3")),
        request(b"POST", (b"Transfer-Encoding", b"Chunked")),
        request(b"POST", (b"transfer-encoding", b"gzip")),
        request(b"GET", (b"connection", b"keep-alive")),
        request(b"GET", (b"bad name", b"v")),
        request(b"GET", (b"x", b"a\r\nb")),
        request(b"GET", (b"x", b" a")),
        [*request()[:2], (b":path", b"/"), (b"Host", b"h")],
        request(b"G T"),
        [*request()[:3], (b":path", b"/a b")],
        request(b"GET", (b"host", b"h")),
    ],
)
@pytest.mark.parametrize("end_stream", [True, False])
def test_client_requests_alike(block: Fields, end_stream: bool) -> None:
    steps: list[Step] = [("request", block, end_stream)]
    if not end_stream:
        steps.append(("data", b"abc", True))
    client_compare([*steps, ("recv", HELLO), ("request", request(), True)])


def test_client_head_limit_alike() -> None:
    client_compare([("request", request(), True), ("recv", HELLO)], max_header_size=20)


def test_plain_client_exchanges_bypass_h11s_event_machinery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    for name in ("next_event", "send_with_data_passthrough", "start_next_cycle"):
        monkeypatch.setattr(h11.Connection, name, spy(calls, name))
    client = H11ClientProtocol()
    for _ in range(2):
        client.submit_headers(client.get_available_stream_id(), request(), True)
        assert client.bytes_to_send() == b"GET /p HTTP/1.1\r\nhost: h\r\n\r\n"
        client.bytes_received(HELLO)
        events = drain(client)
        assert [type(event) for event in events] == [HeadersReceived, DataReceived]
        assert client.is_available()
    assert calls == []
