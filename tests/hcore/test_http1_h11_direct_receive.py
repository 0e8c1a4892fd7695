"""The h11 client reading a response from the bytes received gives what h11 gives.

While h11 holds no bytes, :class:`~hcore.protocols.http1.H11ClientProtocol`
parses a plain response head from the bytes just received, and takes its
body from them, instead of copying them into h11's buffer and out again
(``_h11_fast_client.take_response_from``); the status and field lines it
has seen before come from bounded memos.  As in test_http1_h11_fast_client.py,
the same script runs on that client and on one going through h11 for
everything, comparing bytes, events, refusals and h11's state after every
step: here over series of nginx-shaped responses (a changing Date, lines
seen before in new company), bodies in pieces, bytes past the body, and
random cuts of the input.
"""

from __future__ import annotations

from itertools import pairwise

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcore.events import DataReceived
from hcore.protocols.http1 import H11ClientProtocol
from hcore.protocols.http1 import _h11_fast_client as fast_client
from hcore.protocols.http1._line_memo import LINE_KEPT_SIZE, LINES_KEPT, LineMemo
from tests.hcore.h11_fast_helpers import Step, spy
from tests.hcore.pairs import drain
from tests.hcore.test_http1_h11_fast_client import client_compare

GET = (
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8080"),
    (b":path", b"/kib.bin"),
)


def nginx(body: bytes, second: int = 0, *extra: bytes) -> bytes:
    """A response of nginx's shape, its Date at ``second``."""
    lines = [
        b"HTTP/1.1 200 OK",
        b"Server: nginx/1.22.1",
        b"Date: Thu, 26 Nov 2026 17:00:%02d GMT" % second,
        b"Content-Type: application/octet-stream",
        b"Content-Length: %d" % len(body),
        b"Last-Modified: Thu, 26 Nov 2026 16:00:00 GMT",
        b"Connection: keep-alive",
        b'ETag: "6565a1b0-400"',
        b"Accept-Ranges: bytes",
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def exchanges(*responses: bytes) -> list[Step]:
    """A GET answered by each response in turn."""
    steps: list[Step] = []
    for response in responses:
        steps += [("request", GET, True), ("recv", response)]
    return steps


def test_repeated_responses_alike() -> None:
    client_compare(exchanges(*(nginx(b"x" * 1024, second) for second in range(5))))


@pytest.mark.parametrize(
    "response",
    [
        nginx(b""),
        nginx(b"abc"),
        # Lines seen before, in a head that is not plain.
        nginx(b"abc", 0, b"Content-Length: 3"),
        nginx(b"abc", 0, b"Connection: close"),
        nginx(b"abc", 0, b"Transfer-Encoding: chunked"),
        nginx(b"abc", 0, b"Bad Name: x"),
        nginx(b"abc", 0, b" folded"),
        nginx(b"abc").replace(b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK"),
        nginx(b"abc").replace(b"200 OK", b"204 No Content"),
        nginx(b"abc").replace(b"200 OK", b"103 Early Hints"),
        nginx(b"abc").replace(b"200 OK", b"2000 OK"),
        nginx(b"abc").replace(b"Content-Length: 3", b"Content-Length: x"),
        nginx(b"abc").replace(b"Content-Length: 3", b"Content-Length: 4"),
        nginx(b"abc").replace(b"Content-Length: 3", b"X-No-Length: 3"),
        # Bytes past the body: the server's error.
        nginx(b"abc") + b"HTTP/1.1",
        nginx(b"abc") + nginx(b"abc"),
        b"\r\n\r\n",
    ],
)
def test_responses_after_memoized_ones_alike(response: bytes) -> None:
    # The first two exchanges fill the memos; the third meets them.
    client_compare(exchanges(nginx(b"abc", 1), nginx(b"ab", 2), response))
    # The same, the head and the body cut apart, the body in two.
    head = response.find(b"\r\n\r\n") + 4
    client_compare(
        [
            *exchanges(nginx(b"abc", 1)),
            ("request", GET, True),
            ("recv", response[:head]),
            ("recv", response[head : head + 1]),
            ("recv", response[head + 1 :]),
            ("eof",),
        ]
    )


def test_head_limit_alike_from_the_memo() -> None:
    client_compare(exchanges(nginx(b"ab"), nginx(b"ab")), max_header_size=100)


@pytest.mark.parametrize(
    "response",
    [
        nginx(b"ab"),
        # No reason phrase, no space after the colons, spaces around values.
        b"HTTP/1.1 200\r\nContent-Length:2\r\nX:y\r\n\r\nab",
        b"HTTP/1.1 200 \r\nContent-Length:  2 \r\nX: \t y\r\n\r\nab",
    ],
)
def test_head_limit_alike_around_the_head_size(response: bytes) -> None:
    # The direct path skips HeadLimits.check only where it must pass.
    size = response.find(b"\r\n\r\n") + 4
    for limit in range(size - 30, size + 30):
        client_compare(exchanges(response, response), max_header_size=limit)


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
    extra=st.sampled_from([b"", b"x", nginx(b"")]),
    close=st.booleans(),
)
def test_random_cuts_alike(cuts: list[int], extra: bytes, close: bool) -> None:
    raw = nginx(b"a" * 700, 1) + nginx(b"", 2) + nginx(b"b" * 900, 3)
    stream = raw + extra
    bounds = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    pieces = [stream[a:b] for a, b in pairwise(bounds)]
    steps: list[Step] = [("request", GET, True)]
    # A new request as soon as the last one was answered (three responses).
    offsets = [len(nginx(b"a" * 700, 1)), len(nginx(b"a" * 700, 1) + nginx(b"", 2))]
    sent = 0
    for piece in pieces:
        steps.append(("recv", piece))
        sent += len(piece)
        while offsets and sent >= offsets[0]:
            offsets.pop(0)
            steps.append(("request", GET, True))
    if close:
        steps.append(("eof",))
    client_compare(steps)


def test_whole_responses_skip_h11s_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for name in ("receive_data", "next_event", "send_with_data_passthrough"):
        monkeypatch.setattr(h11.Connection, name, spy(calls, name))
    client = H11ClientProtocol()
    for second in range(3):
        client.submit_headers(client.get_available_stream_id(), GET, True)
        client.bytes_to_send()
        client.bytes_received(nginx(b"x" * 10, second))
        assert [type(event).__name__ for event in drain(client)] == [
            "HeadersReceived",
            "DataReceived",
        ]
    assert calls == []


def test_body_pieces_are_the_bytes_received() -> None:
    client = H11ClientProtocol()
    client.submit_headers(1, GET, True)
    response = nginx(b"x" * 3000)
    head = response.find(b"\r\n\r\n") + 4
    client.bytes_received(response[: head + 1000])
    drain(client)
    piece = response[head + 1000 : head + 2000]
    client.bytes_received(piece)
    [event] = drain(client)
    assert isinstance(event, DataReceived) and event.data is piece
    assert not event.end_stream
    last = response[head + 2000 :]
    client.bytes_received(last)
    [event] = drain(client)
    assert isinstance(event, DataReceived) and event.data is last and event.end_stream
    assert client.is_available()


def test_memos_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_client, "_FIELD_LINES", LineMemo())
    monkeypatch.setattr(fast_client, "_STATUS_LINES", LineMemo())
    kept = LINES_KEPT
    long_line = b"X-Long: " + b"y" * LINE_KEPT_SIZE
    steps: list[Step] = []
    for count in range(kept + 50):
        steps += exchanges(nginx(b"", 0, b"X-Count: %d" % count, long_line))
    steps += exchanges(nginx(b"ab").replace(b"200 OK", b"299 Fine"))
    client_compare(steps)
    memo = fast_client._FIELD_LINES
    # Emptied when full, then filled again; long lines never kept.
    assert 0 < len(memo) <= kept
    assert long_line not in memo
    assert b"X-Count: %d" % (kept + 49) in memo
    assert set(fast_client._STATUS_LINES) == {b"HTTP/1.1 200 OK", b"HTTP/1.1 299 Fine"}


def test_only_plain_lines_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_client, "_FIELD_LINES", LineMemo())
    monkeypatch.setattr(fast_client, "_STATUS_LINES", LineMemo())
    client_compare(
        exchanges(
            nginx(b"ab", 0, b"Connection: close"),
        )
    )
    client_compare(
        exchanges(
            nginx(b"ab").replace(b"200 OK", b"204 No Content"),
            nginx(b"ab", 0, b"Transfer-Encoding: chunked"),
        )
    )
    lines = fast_client._FIELD_LINES
    assert b"Connection: close" not in lines
    assert b"Transfer-Encoding: chunked" not in lines
    assert lines[b"Content-Length: 2"] == ((b"content-length", b"2"), 2)
    assert lines[b"Server: nginx/1.22.1"] == ((b"server", b"nginx/1.22.1"), -1)
    assert b"HTTP/1.1 204 No Content" not in fast_client._STATUS_LINES
