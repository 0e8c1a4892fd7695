"""A server's direct paths for its streams change no byte, no event, no h2 state.

The direct receive path (``_h2_receive``: requests arrive as
``RequestBlock`` and open streams without hyperframe frames or h2's state
machine calls, remembered header blocks recognised by identity) and the
direct send transitions (``_h2``: responses, data and END_STREAM straight
into h2's stream states, ``send_if_room``, remembered response encodings)
only save CPU.  These tests run the same scripts through them and through
h2's own paths (``FAST_SEND`` off) and compare every byte the server
sends, every event, and h2's record of every stream, state machine
included; and they check the small memories each path keeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from h2.exceptions import NoSuchStreamError, ProtocolError
from h2.stream import H2StreamStateMachine, StreamInputs
from hpack import Encoder
from hyperframe.frame import Frame, HeadersFrame, WindowUpdateFrame

import hcore.protocols.http2._h2 as _h2
from hcore import LocalProtocolError
from hcore.protocols.http2 import H2ServerProtocol
from hcore.protocols.http2._frame_buffer import FastFrameBuffer, RequestBlock
from hcore.protocols.http2._headers import REQUEST, ReceivedChecker, ResponseChecker
from hcore.protocols.http2._hpack import MemoDecoder, MemoEncoder, RememberedBlock
from hcore.protocols.http2._options import Options
from tests.hcore.http2_helpers import RawClient, parse_frames, request
from tests.hcore.pairs import drain

Step = Callable[[RawClient, H2ServerProtocol], object]
OK = [(b":status", b"200"), (b"content-type", b"text/plain")]


def _state(server: H2ServerProtocol) -> object:
    conn = server._conn
    return (
        conn.state_machine.state,
        conn.highest_inbound_stream_id,
        conn.outbound_flow_control_window,
        sorted(
            (
                sid,
                vars(s.state_machine),
                s._expected_content_length,
                s.inbound_flow_control_window,
                s.outbound_flow_control_window,
                s.max_outbound_frame_size,
                s.request_method,
            )
            for sid, s in conn.streams.items()
        ),
        sorted(conn._closed_streams.items()),
        sorted((sid, s.pending) for sid, s in server._streams.items()),
    )


def _run(steps: list[Step], fast: bool, monkeypatch: pytest.MonkeyPatch) -> object:
    """Run steps against a fresh server; return everything it produced."""
    monkeypatch.setattr(_h2, "FAST_SEND", fast)
    server = H2ServerProtocol(max_concurrent_streams=8)
    assert server._conn.fast_receive is fast
    assert isinstance(server._conn.incoming_buffer, FastFrameBuffer) is fast
    client = RawClient(server)
    client.start()
    log: list[object] = []
    for step in steps:
        try:
            outcome = step(client, server)
        except Exception as exc:  # the same refusal both ways
            outcome = (type(exc), str(exc))
        if isinstance(outcome, list):
            client.send(*outcome)
            outcome = None
        log.append(repr(outcome))
        log.append([repr(f) for f in client.read()])
        # (Addresses in messages differ from run to run.)
        log.append(re.sub(r"0x[0-9a-f]+", "0x", repr(drain(server))))
        log.append(_state(server))
    return log


def _both(steps: list[Step], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(steps, True, monkeypatch) == _run(steps, False, monkeypatch)


def _requests(first: int, count: int, *extra: tuple[bytes, bytes]) -> Step:
    block = request(b"/r", b"GET", *extra)
    return lambda c, s: [
        f for n in range(count) for f in c.headers(first + 2 * n, block)
    ]


def _answer(first: int, count: int, body: bytes = b"hello") -> Step:
    def step(client: RawClient, server: H2ServerProtocol) -> None:
        for n in range(count):
            server.submit_headers(first + 2 * n, OK)
            server.submit_data(first + 2 * n, body, end_stream=True)

    return step


def test_repeated_requests_and_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    # The second and later blocks come from the decoders' memories (the
    # same tuple each time), the answers from the remembered encodings.
    length = (b"content-length", b"0")
    _both(
        [
            _requests(1, 3),
            _answer(1, 3),
            _requests(7, 4),
            _answer(7, 4),
            _requests(15, 2, length),
            _requests(19, 2),
            _requests(23, 1, length),
            _answer(15, 5),
        ],
        monkeypatch,
    )


def test_a_remembered_block_with_a_bad_length_still_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = (b"content-length", b"x")
    _both([_requests(1, 2), _requests(5, 1, bad), _requests(7, 1)], monkeypatch)


def test_bodies_longer_than_their_remembered_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    post = request(b"/up", b"POST", (b"content-length", b"2"))
    _both(
        [
            lambda c, s: c.headers(1, post, end_stream=False),
            lambda c, s: [c.data(1, b"ab", end_stream=True)],
            lambda c, s: c.headers(3, post, end_stream=False),
            lambda c, s: [c.data(3, b"abc", end_stream=True)],
        ],
        monkeypatch,
    )


def _respond_and_stream(client: RawClient, server: H2ServerProtocol) -> None:
    server.submit_headers(1, [(b":status", b"103"), (b"link", b"</a>")])
    server.submit_headers(1, OK)
    server.submit_data(1, b"")
    server.submit_data(1, b"x" * 70_000)
    server.submit_headers(3, OK)
    server.submit_data(3, b"part")
    server.submit_headers(3, [(b"x-sum", b"1")], end_stream=True)
    server.submit_headers(5, OK, end_stream=True)
    server.submit_headers(7, OK)
    server.submit_data(7, b"", end_stream=True)


def test_responses_trailers_and_waiting_data(monkeypatch: pytest.MonkeyPatch) -> None:
    _both(
        [
            _requests(1, 2),
            lambda c, s: c.headers(5, request(), end_stream=False),
            lambda c, s: c.headers(7, request(b"/h", b"HEAD")),
            _respond_and_stream,
            # Credit for the rest of stream 1's data.
            lambda c, s: [WindowUpdateFrame(0, 100_000), WindowUpdateFrame(1, 100_000)],
            lambda c, s: s.submit_data(1, b"end", end_stream=True),
            # The client ends stream 5 after our END_STREAM: it closes.
            lambda c, s: [c.data(5, b"", end_stream=True)],
            _requests(9, 1),
        ],
        monkeypatch,
    )


def test_misuse_after_the_end_is_refused_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _both(
        [
            _requests(1, 1),
            _answer(1, 1),
            lambda c, s: s.submit_data(1, b"more"),
            lambda c, s: s.submit_headers(1, OK),
            lambda c, s: c.headers(1, request()),
        ],
        monkeypatch,
    )


def test_send_if_room_sends_only_what_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = []
    for fast in (True, False):
        monkeypatch.setattr(_h2, "FAST_SEND", fast)
        conn = _h2.open_connection(Options(), client_side=True)
        conn.data_to_send()
        conn.send_block(1, request())
        conn.data_to_send()
        window = conn.local_flow_control_window(1)
        size = conn.max_outbound_frame_size
        assert not conn.send_if_room(1, b"x" * (size + 1), False)
        assert conn.data_to_send() == b""
        assert conn.send_if_room(1, b"", False)
        assert conn.data_to_send() == b""
        left = window
        while left >= size:
            assert conn.send_if_room(1, b"x" * size, False)
            left -= size
        assert conn.local_flow_control_window(1) == left
        assert not conn.send_if_room(1, b"y" * (left + 1), True)
        assert conn.send_if_room(1, b"y" * left, False)
        assert not conn.send_if_room(1, b"y", True)
        assert conn.send_if_room(1, b"", True)
        frames = parse_frames(conn.data_to_send())
        sent.append([(f.body_len, sorted(f.flags)) for f in frames])
        assert sent[-1][-1] == (0, ["END_STREAM"])
        with pytest.raises(NoSuchStreamError):
            conn.send_if_room(9, b"z", False)
    assert sent[0] == sent[1]


def _after_the_end(conn: _h2.H2Connection) -> list[object]:
    outcomes: list[object] = []
    for method, args in (
        (conn.send_chunk, (1, b"x")),
        (conn.send_chunk, (1, b"", True)),
        (conn.send_block, (1, [(b"x-t", b"1")], True)),
    ):
        with pytest.raises(ProtocolError) as caught:
            method(*args)
        outcomes.append((type(caught.value), str(caught.value)))
    outcomes.append(vars(conn.streams[1].state_machine))
    return outcomes


def test_sending_on_an_ended_stream_fails_as_in_h2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes = []
    for fast in (True, False):
        monkeypatch.setattr(_h2, "FAST_SEND", fast)
        conn = _h2.open_connection(Options(), client_side=True)
        conn.send_block(1, request(), end_stream=True)
        outcomes.append(_after_the_end(conn))
    assert outcomes[0] == outcomes[1]
    # END_STREAM from any other state is h2's transition (which refuses).
    direct, public = H2StreamStateMachine(1), H2StreamStateMachine(1)
    for machine, end in (
        (direct, _h2._send_end_stream),
        (public, lambda m: m.process_input(StreamInputs.SEND_END_STREAM)),
    ):
        with pytest.raises(ProtocolError):
            end(machine)
    assert vars(direct) == vars(public)


def test_request_blocks_are_the_frames_hyperframe_builds() -> None:
    encoder = Encoder()
    frames: list[Frame] = []
    for stream_id, flags in (
        (1, ["END_HEADERS", "END_STREAM"]),
        (2, ["END_HEADERS"]),
        (3, ["END_HEADERS"]),
    ):
        block = encoder.encode(request())
        frames.append(HeadersFrame(stream_id, block, flags=flags))
    light, plain = FastFrameBuffer(requests=True), FastFrameBuffer()
    for buffer in (light, plain):
        buffer.max_frame_size = 16_384
        buffer.add_data(b"".join(f.serialize() for f in frames))
    got, expected = list(light), list(plain)
    assert [type(f) for f in got] == [RequestBlock, HeadersFrame, RequestBlock]
    assert isinstance(got[0], RequestBlock) and isinstance(got[2], RequestBlock)
    assert (got[0].stream_id, got[0].end_stream) == (1, True)
    assert (got[2].stream_id, got[2].end_stream) == (3, False)
    built = (got[0].as_frame(), got[1], got[2].as_frame())
    for mine, theirs in zip(built, expected, strict=True):
        assert type(mine) is type(theirs)
        assert sorted(mine.flags) == sorted(theirs.flags)
        assert vars(mine) | {"flags": None} == vars(theirs) | {"flags": None}
    assert repr(got[0]) == repr(expected[0])


def test_the_decoder_remembers_blocks_as_one_tuple() -> None:
    encoder, decoder = MemoEncoder(), MemoDecoder(65_536)
    fields = [(b":status", b"200"), (b"x-new", b"1")]
    first = encoder.encode(fields)  # adds x-new to the table
    assert decoder.remembered(first) is None
    decoder.decode(first, raw=True)
    assert decoder.remembered(first) is None  # it changed the table
    again = encoder.encode(fields)
    assert decoder.remembered(again) is None
    assert decoder.decode(again, raw=True) == fields
    remembered = decoder.remembered(again)
    assert remembered == tuple(fields) and decoder.remembered(again) is remembered
    # A change of limits or of the table forgets it.
    decoder.max_header_list_size = 100
    assert decoder.remembered(again) is None
    decoder.max_header_list_size = 65_536
    assert decoder.remembered(again) is remembered
    decoder.decode(encoder.encode([(b"x-other", b"2")]), raw=True)
    assert decoder.remembered(again) is None


def test_remembered_encodings_follow_the_table() -> None:
    memo, plain = MemoEncoder(), Encoder()
    place = RememberedBlock()
    fields = [(b":status", b"200"), (b"x-new", b"1")]
    for _ in range(3):
        assert memo.encode_remembered(fields, place) == plain.encode(fields)
    assert place.at == memo.header_table.changes
    # The table moves: the place is refreshed, never reused stale.
    other = [(b"x-other", b"2")]
    assert memo.encode_remembered(other, RememberedBlock()) == plain.encode(other)
    for _ in range(2):
        assert memo.encode_remembered(fields, place) == plain.encode(fields)
    memo.header_table_size = plain.header_table_size = 64
    assert memo.encode_remembered(fields, place) == plain.encode(fields)
    assert memo.encode_remembered(fields, place) == plain.encode(fields)


def test_the_response_check_keeps_one_place_per_block() -> None:
    checker = ResponseChecker()
    first = checker.check_block(list(OK))
    again = checker.check_block(tuple(OK))
    assert first[2] is not None and again[2] is first[2]
    assert first[:2] == (list(OK), False) and again[:2] == (tuple(OK), False)
    # Blocks it does not remember have no place.
    assert checker.check_block([*OK, (b"x-big", b"v" * 2000)])[2] is None
    assert checker.check_block([[b":status", b"200"]])[2] is None  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError):
        checker.check_block([(b":status", b"200", b"x")])  # type: ignore[list-item]


def test_the_request_check_knows_the_same_tuple_again() -> None:
    checker = ReceivedChecker(65_536, allow_protocol=False)
    block = tuple(request(b"/a"))
    first = checker.check(block, REQUEST)
    assert checker._last[0] is block
    assert checker.check(block, REQUEST) is first
    # A list is never taken by identity (it could change).
    as_list = list(block)
    assert checker.check(as_list, REQUEST) is first
    assert checker._last[0] is block
