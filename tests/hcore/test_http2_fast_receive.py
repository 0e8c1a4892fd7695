"""The direct receive path for a request's HEADERS changes no byte and no event.

``H2Connection._receive_headers_frame`` (see ``_h2``) takes a HEADERS frame
that opens a server's stream without h2's generic helpers.  These tests feed
the same frames, well-formed and not, to a server on that path and to one on
h2's own, and compare every byte the servers send, every event, and h2's
record of each stream.
"""

from __future__ import annotations

import re

import pytest
from hyperframe.frame import Frame, HeadersFrame, PriorityFrame

import hcore.protocols.http2._h2 as _h2
from hcore.protocols.http2 import H2ServerProtocol
from tests.hcore.http2_helpers import RawClient, request
from tests.hcore.pairs import drain


def _priority_headers(client: RawClient, stream_id: int) -> list[Frame]:
    frames = client.headers(stream_id, request(b"/p"))
    first = frames[0]
    assert isinstance(first, HeadersFrame)
    first.flags.add("PRIORITY")
    first.depends_on = 0
    first.stream_weight = 15
    return frames


def _run(script: list[object], fast: bool, monkeypatch: pytest.MonkeyPatch) -> object:
    """Run a script against a fresh server; return everything it produced.

    Each step makes frames (each one read of the server) or bytes (one read).
    """
    monkeypatch.setattr(_h2, "FAST_SEND", fast)
    server = H2ServerProtocol(max_concurrent_streams=4)
    assert server._conn.fast_receive is fast
    client = RawClient(server)
    client.start()
    log: list[object] = []
    for step in script:
        frames = step(client) if callable(step) else step
        assert isinstance(frames, list | bytes)
        client.send(*(frames if isinstance(frames, list) else [frames]))
        log.append([repr(f) for f in client.read()])
        # (Addresses in messages differ from run to run.)
        log.append(re.sub(r"0x[0-9a-f]+", "0x", repr(drain(server))))
        conn = server._conn
        log.append(
            (
                conn.state_machine.state,
                conn.highest_inbound_stream_id,
                sorted(
                    (
                        sid,
                        s.state_machine.state,
                        s._expected_content_length,
                        s.inbound_flow_control_window,
                        s.outbound_flow_control_window,
                        s.max_outbound_frame_size,
                    )
                    for sid, s in conn.streams.items()
                ),
                sorted(conn._closed_streams.items()),
            )
        )
    return log


def _both(script: list[object], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _run(script, True, monkeypatch)
    reference = _run(script, False, monkeypatch)
    assert fast == reference


def test_requests_with_and_without_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    post = request(b"/up", b"POST", (b"content-length", b"3"))
    _both(
        [
            lambda c: c.headers(1, request(b"/a")),
            lambda c: c.headers(3, post, end_stream=False),
            lambda c: [c.data(3, b"abc", end_stream=True)],
            lambda c: c.headers(5, request(b"/h", b"HEAD")),
            # Several requests in one read, one of them in CONTINUATION frames.
            lambda c: [
                *c.headers(7, request(b"/b")),
                *c.headers(9, request(b"/c", b"GET", (b"x", b"y" * 50)), fragment=8),
            ],
        ],
        monkeypatch,
    )


def test_a_body_longer_than_its_content_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    post = request(b"/up", b"POST", (b"content-length", b"2"))
    _both(
        [
            lambda c: c.headers(1, post, end_stream=False),
            lambda c: [c.data(1, b"abc", end_stream=True)],
            lambda c: c.headers(3, request(b"/a")),
        ],
        monkeypatch,
    )


def test_a_bad_content_length_ends_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # h2 refuses it while it receives the block.
    post = request(b"/", b"POST", (b"content-length", b"x"))
    _both(
        [lambda c: c.headers(1, post), lambda c: c.headers(3, request())], monkeypatch
    )


def test_a_status_in_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # h2 takes the block for a response, which a server cannot receive.
    block = [(b":status", b"103"), *request()]
    _both(
        [lambda c: c.headers(1, block, False), lambda c: c.headers(3, request())],
        monkeypatch,
    )


def test_priority_and_trailers_take_h2s_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _both(
        [
            # PRIORITY in the HEADERS frame.
            lambda c: _priority_headers(c, 1),
            # A PRIORITY frame first, then the stream's HEADERS.
            lambda c: [PriorityFrame(3, depends_on=0), *c.headers(3, request())],
            # Trailers on an open stream.
            lambda c: c.headers(5, request(), end_stream=False),
            lambda c: c.headers(5, [(b"x-t", b"1")]),
            lambda c: c.headers(7, request()),
        ],
        monkeypatch,
    )


def _opening(client: RawClient, first: int, count: int) -> list[Frame]:
    frames: list[Frame] = []
    for n in range(count):
        frames += client.headers(first + 2 * n, request(), end_stream=False)
    return frames


def test_streams_over_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _both(
        [lambda c: _opening(c, 1, 6), lambda c: c.headers(13, request())],
        monkeypatch,
    )


def test_a_stream_id_below_the_highest_ends_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _both(
        [
            lambda c: c.headers(5, request()),
            lambda c: c.headers(3, request()),
        ],
        monkeypatch,
    )


def test_an_even_stream_id_ends_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _both([lambda c: c.headers(2, request())], monkeypatch)


def test_a_broken_hpack_block_ends_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _both(
        [
            lambda c: c.headers(1, request()),
            [HeadersFrame(3, b"\xff\xff\xff\xff", flags=["END_HEADERS"])],
        ],
        monkeypatch,
    )


def test_headers_after_our_goaway_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = []
    for fast in (True, False):
        monkeypatch.setattr(_h2, "FAST_SEND", fast)
        server = H2ServerProtocol()
        client = RawClient(server)
        client.start()
        client.send(*client.headers(1, request()))
        server.submit_close()
        client.send(*client.headers(3, request()))
        results.append(([repr(f) for f in client.read()], repr(drain(server))))
    assert results[0] == results[1]


def test_streams_over_h2s_ceiling_in_one_read_end_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # h2 admits streams up to its ceiling (limit + 1000, see _h2) and counts
    # them within a read, before the protocol refuses those over the limit.
    _both(
        [lambda c: b"".join(f.serialize() for f in _opening(c, 1, 1010))],
        monkeypatch,
    )
