"""The same HTTP/2 conversations give the same events however the bytes are cut."""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from hcore.events import (
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    InformationalResponseReceived,
    SendBufferDrained,
    StreamResetReceived,
    TrailersReceived,
)
from hcore.protocols.http2 import H2ClientProtocol, H2ServerProtocol
from tests.hcore.http2_helpers import request
from tests.hcore.pairs import Splitter, TCPPair, drain, whole

Log = dict[str, list[Event]]
OK = [(b":status", b"200")]
CONNECT = [(b":method", b"CONNECT"), (b":authority", b"upstream.test:443")]


def _converse(split: Splitter) -> Log:
    """A scripted conversation with most of what HTTP/2 does; every event, per side."""
    pair = TCPPair(
        H2ClientProtocol(), H2ServerProtocol(max_concurrent_streams=5), split
    )
    client, server = pair.client, pair.server
    log: Log = {"client": [], "server": []}

    def step() -> None:
        pair.pump()
        log["client"] += drain(client)
        log["server"] += drain(server)

    step()
    client.submit_headers(1, request(b"/big"), end_stream=True)
    client.submit_headers(3, request(b"/up", b"POST", (b"te", b"trailers")))
    client.submit_data(3, b"u" * 100_000)
    client.submit_headers(3, [(b"x-sum", b"u")], end_stream=True)
    client.submit_headers(5, request(b"/cancelled"))
    client.submit_headers(7, CONNECT)
    step()
    server.submit_headers(1, [(b":status", b"103"), (b"link", b"</s.css>")])
    server.submit_headers(1, OK)
    server.submit_data(1, b"b" * 150_000, end_stream=True)
    server.submit_headers(7, OK)
    server.submit_data(7, b"tunnel hello")
    client.submit_stream_reset(5, client.error_codes.cancel)
    for _ in range(12):
        step()
    server.submit_headers(3, [(b":status", b"201")])
    server.submit_data(3, b"created")
    server.submit_headers(3, [(b"x-status", b"0")], end_stream=True)
    client.submit_data(7, b"tunnel bytes", end_stream=True)
    server.submit_data(7, b"", end_stream=True)
    step()
    # GOAWAY crossing a new request.
    server.submit_close()
    client.submit_headers(9, request(b"/late"), end_stream=True)
    step()
    return log


def _by_stream(events: Sequence[Event]) -> dict[int, list[Event]]:
    """Each stream's events with adjacent data merged; stream 0 for the rest."""
    streams: dict[int, list[Event]] = {}
    for event in events:
        sid = getattr(event, "stream_id", 0)
        mine = streams.setdefault(sid, [])
        last = mine[-1] if mine else None
        if isinstance(event, DataReceived) and isinstance(last, DataReceived):
            mine[-1] = DataReceived(sid, last.data + event.data, event.end_stream)
        else:
            mine.append(event)
    return streams


WHOLE = _converse(whole)


def test_the_scripted_conversation() -> None:
    client = _by_stream(WHOLE["client"])
    server = _by_stream(WHOLE["server"])
    assert client[1] == [
        InformationalResponseReceived(
            1, [(b":status", b"103"), (b"link", b"</s.css>")]
        ),
        HeadersReceived(1, OK),
        DataReceived(1, b"b" * 150_000, end_stream=True),
    ]
    assert client[3] == [
        SendBufferDrained(3),
        HeadersReceived(3, [(b":status", b"201")]),
        DataReceived(3, b"created"),
        TrailersReceived(3, [(b"x-status", b"0")]),
    ]
    assert client[7] == [
        HeadersReceived(7, OK),
        DataReceived(7, b"tunnel hello", end_stream=True),
    ]
    assert client[0] == [GoawayReceived(7, 0, (9,))]
    assert 5 not in client and 9 not in client
    assert server[3] == [
        HeadersReceived(3, request(b"/up", b"POST", (b"te", b"trailers"))),
        DataReceived(3, b"u" * 100_000),
        TrailersReceived(3, [(b"x-sum", b"u")]),
    ]
    assert server[5] == [
        HeadersReceived(5, request(b"/cancelled")),
        StreamResetReceived(5, 8),
    ]
    assert server[1] == [
        HeadersReceived(1, request(b"/big"), end_stream=True),
        SendBufferDrained(1),
    ]
    assert server[7] == [
        HeadersReceived(7, CONNECT),
        DataReceived(7, b"tunnel bytes", end_stream=True),
    ]
    assert 9 not in server


def _splitter(rnd: random.Random, cuts: int) -> Splitter:
    def split(data: bytes) -> list[bytes]:
        if len(data) < 2:
            return [data]
        points = sorted(rnd.sample(range(1, len(data)), min(cuts, len(data) - 1)))
        return [
            data[i:j] for i, j in zip([0, *points], [*points, len(data)], strict=True)
        ]

    return split


@settings(max_examples=60, deadline=None)
@given(rnd=st.randoms(use_true_random=False), cuts=st.integers(1, 200))
def test_cut_bytes_give_the_same_events(rnd: random.Random, cuts: int) -> None:
    log = _converse(_splitter(rnd, cuts))
    for side in ("client", "server"):
        assert _by_stream(log[side]) == _by_stream(WHOLE[side])


def test_byte_by_byte() -> None:
    def one_byte(data: bytes) -> list[bytes]:
        return [data[i : i + 1] for i in range(len(data))]

    logs = []
    for split in (whole, one_byte):
        pair = TCPPair(H2ClientProtocol(), H2ServerProtocol(), split)
        pair.pump()
        pair.client.submit_headers(1, request(b"/", b"POST"))
        pair.client.submit_data(1, b"x" * 1000, end_stream=True)
        pair.pump()
        pair.server.submit_headers(1, OK)
        pair.server.submit_headers(1, [(b"x-t", b"1")], end_stream=True)
        pair.pump()
        logs.append((drain(pair.client), drain(pair.server)))
    assert logs[0] == logs[1]
    assert logs[0][0] == [HeadersReceived(1, OK), TrailersReceived(1, [(b"x-t", b"1")])]
