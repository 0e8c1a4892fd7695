"""The h11 server reading a request head from the bytes received gives what h11 gives.

While h11 holds no bytes, :class:`~hcore.protocols.http1.H11ServerProtocol`
parses a plain request head from the bytes just received
(``_h11_fast_server.take_request_from``) instead of copying them into h11's
buffer and taking the head out again; request and field lines seen before
come from bounded memos.  As in test_http1_h11_fast.py, the same script
runs on that server and on one going through h11 for everything,
comparing bytes, events, refusals and h11's whole state after every step:
over wrk-shaped series, bodies cut at every offset, pipelined requests,
heads split across reads, bad input of every kind, and random cuts.
"""

from __future__ import annotations

from itertools import pairwise

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcore.protocols.http1 import H11ServerProtocol
from hcore.protocols.http1 import _h11_fast_server as fast_server
from hcore.protocols.http1 import _line_memo as line_memo
from hcore.protocols.http1._line_memo import LineMemo
from tests.hcore.h11_fast_helpers import PlainServer, Step, spy
from tests.hcore.test_http1_h11_fast import OK, compare

GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
POST = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"


def served(*reads: bytes, answers: int) -> list[Step]:
    """Receive ``reads`` one by one, then answer ``answers`` requests with OK."""
    steps: list[Step] = [("recv", read) for read in reads]
    for _ in range(answers):
        steps += [("headers", OK, False), ("data", b"ok", True)]
    return steps


def series(*requests: bytes) -> list[Step]:
    """Each request in a read of its own, answered before the next comes."""
    steps: list[Step] = []
    for request in requests:
        steps += served(request, answers=1)
    return steps


#: Requests, each alone in one read on a fresh connection.
REQUESTS: dict[str, bytes] = {
    "wrk GET": GET,
    "POST": POST,
    "empty length": b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    "connection keep-alive": (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
    ),
    "connection close": b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    "upgrade": (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"
    ),
    "expect": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
        b"Expect: 100-continue\r\n\r\n"
    ),
    "chunked": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    ),
    "HTTP/1.0": b"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    "HTTP/1.0 without host": b"GET / HTTP/1.0\r\n\r\n",
    "CONNECT": b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    "absolute target": b"GET http://a/p HTTP/1.1\r\nHost: a\r\n\r\n",
    "absolute target other host": b"GET http://a/p HTTP/1.1\r\nHost: b\r\n\r\n",
    "asterisk OPTIONS": b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "HEAD": b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
    "missing host": b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
    "empty host": b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
    "bad host": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "duplicate length": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
        b"Content-Length: 2\r\n\r\nok"
    ),
    "conflicting lengths": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
        b"Content-Length: 3\r\n\r\nok"
    ),
    "bad length": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2x\r\n\r\nok",
    "negative length": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -2\r\n\r\n",
    "huge length": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n"
    ),
    "length and chunked": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    "lone LF in head": b"GET / HTTP/1.1\nHost: h\r\n\r\n",
    "lone LF in field": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\nY: b\r\n\r\n",
    "lone CR": b"GET / HTTP/1.1\r\nHost: h\rX: a\r\n\r\n",
    "LF only": b"GET / HTTP/1.1\nHost: h\n\n",
    "bad request line": b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    "bad method": b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
    "bad target": b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
    "bad version": b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "bad field name": b"GET / HTTP/1.1\r\nHost: h\r\nX Y: z\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    "bad field value": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    "empty field value": b"GET / HTTP/1.1\r\nHost: h\r\nX:\r\n\r\n",
    "upper-case names": b"GET / HTTP/1.1\r\nHOST: h\r\nX-Long-NAME: V\r\n\r\n",
    "leading empty line": b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "garbage": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    "body past the head": b"GET / HTTP/1.1\r\nHost: h\r\n\r\nxyz",
}


@pytest.mark.parametrize("request_bytes", REQUESTS.values(), ids=list(REQUESTS))
def test_request_alone(request_bytes: bytes) -> None:
    compare([*served(request_bytes, answers=1), ("eof",)])


@pytest.mark.parametrize("request_bytes", REQUESTS.values(), ids=list(REQUESTS))
def test_request_after_a_plain_one(request_bytes: bytes) -> None:
    # The second comes to an idle (parked) connection.
    compare([*series(GET, request_bytes), ("eof",)])


def run_wrk_series(server: H11ServerProtocol) -> None:
    """Five wrk requests, each answered before the next comes."""
    for _ in range(5):
        server.bytes_received(GET)
        while server.next_event() is not None:
            pass
        server.submit_headers(server._stream_id, OK)
        server.submit_data(server._stream_id, b"ok", end_stream=True)
        server.bytes_to_send()


def test_wrk_series_taken_without_feeding_h11(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(h11.Connection, "receive_data", spy(calls, "receive_data"))
    monkeypatch.setattr(h11.Connection, "next_event", spy(calls, "next_event"))
    run_wrk_series(PlainServer())
    assert calls.count("receive_data") == 5
    calls.clear()
    run_wrk_series(H11ServerProtocol())
    assert calls == []


def test_changing_lines_in_series() -> None:
    requests = [
        b"GET /%d HTTP/1.1\r\nHost: h\r\nX-Id: %d\r\nAccept: */*\r\n\r\n" % (n, n)
        for n in range(20)
    ]
    compare(series(*requests, *requests))


@pytest.mark.parametrize("offset", range(len(POST) + 1))
def test_post_cut_at_every_offset(offset: int) -> None:
    compare([*served(POST[:offset], POST[offset:], answers=1), *series(POST), ("eof",)])


@pytest.mark.parametrize("offset", range(1, len(GET)))
def test_head_split_across_reads(offset: int) -> None:
    compare(served(GET, GET[:offset], answers=1) + served(GET[offset:], answers=1))


def test_pipelined_requests() -> None:
    compare(served(GET + POST + GET + GET[:10], GET[10:], answers=4))
    compare(served(POST + b"GARBAGE\r\n\r\n", answers=1))


def test_pipelined_bound() -> None:
    compare(
        [*served(GET + GET * 100, answers=3), ("eof",)],
        max_pipelined_size=len(GET) * 10,
    )


@pytest.mark.parametrize("size", [40, 60, 100])
def test_head_size_bound(size: int) -> None:
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: %s\r\n\r\n" % (b"p" * 40)
    compare(series(GET, big, GET), max_header_size=size)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_head_count_bound(count: int) -> None:
    three = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"
    compare(series(three, GET), max_header_count=count)


def test_after_eof_and_during_response() -> None:
    compare([("recv", GET), ("recv", GET), ("headers", OK, False), ("eof",)])
    compare([("recv", GET), ("eof",), ("recv", GET)])
    compare([("recv", bytearray(GET)), *served(answers=1)])
    compare([("recv", b""), *served(GET, answers=1)])


def test_line_memos_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_server, "_REQUEST_LINES", LineMemo())
    monkeypatch.setattr(fast_server, "_FIELD_LINES", LineMemo())
    monkeypatch.setattr(line_memo, "LINES_KEPT", 4)
    requests = [
        b"GET /%d HTTP/1.1\r\nHost: h\r\nX-N: %d\r\n\r\n" % (n, n) for n in range(10)
    ]
    long = b"GET /%s HTTP/1.1\r\nHost: h\r\n\r\n" % (b"a" * 300)
    compare(series(*requests, long, *requests))
    assert len(fast_server._REQUEST_LINES) <= 4
    assert len(fast_server._FIELD_LINES) <= 4
    assert not any(len(line) > 256 for line in fast_server._REQUEST_LINES)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(list(REQUESTS.values())), min_size=1, max_size=4),
    st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_random_cuts(requests: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(requests)
    points = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    reads = [stream[start:end] for start, end in pairwise(points)]
    compare([*served(*reads, answers=len(requests)), ("eof",)])
