"""The direct send paths and the remembering HPACK coders change no byte.

``H2Connection.send_block``/``send_chunk`` (see ``_h2``) and the coders of
``_hpack`` only save CPU; these tests run the same exchanges through them
and through h2's own methods with hpack's plain coders and compare every
byte and every event, and compare the coders with hpack's on random
sequences of header blocks.
"""

from __future__ import annotations

import pytest
from h2.exceptions import ProtocolError, TooManyStreamsError
from hpack import Decoder, Encoder, HPACKError, NeverIndexedHeaderTuple
from hypothesis import given, settings
from hypothesis import strategies as st

import hcore.protocols.http2._h2 as _h2
from hcore.events import DataReceived, Event, HeadersReceived
from hcore.protocols.http2 import H2ClientProtocol, H2ServerProtocol
from hcore.protocols.http2._headers import (
    REQUEST,
    MalformedHeaders,
    ReceivedChecker,
    received,
)
from hcore.protocols.http2._hpack import MAX_ENTRIES, MEMO, MemoDecoder, MemoEncoder
from hcore.protocols.http2._options import Options
from tests.hcore.http2_helpers import parse_frames, request
from tests.hcore.pairs import drain

BIG = b"x" * 20_000
BODY = b"b" * 100_000


def _exchange(
    client: H2ClientProtocol, server: H2ServerProtocol, log: list[object]
) -> tuple[list[Event], list[Event]]:
    """Move bytes both ways until both are quiet; log bytes and events."""
    client_events: list[Event] = []
    server_events: list[Event] = []
    for _ in range(100):
        to_server = client.bytes_to_send()
        server.bytes_received(to_server)
        taken = drain(server)
        to_client = server.bytes_to_send()
        client.bytes_received(to_client)
        got = drain(client)
        log.extend((to_server, to_client, repr(taken), repr(got)))
        server_events += taken
        client_events += got
        if not (to_server or to_client or taken or got):
            return client_events, server_events
    raise AssertionError("the exchange did not settle")


def _transcript() -> list[object]:
    """A scripted exchange touching every send path; everything it produced."""
    client, server = H2ClientProtocol(), H2ServerProtocol()
    log: list[object] = []
    _exchange(client, server, log)
    for _ in range(2):  # the second round finds the HPACK blocks remembered
        first = client.get_available_stream_id()
        client.submit_headers(first, request(b"/a"), end_stream=True)
        post = client.get_available_stream_id()
        client.submit_headers(
            post,
            request(
                b"/upload",
                b"POST",
                (b"cookie", b"a=1"),
                (b"authorization", b"secret"),
                (b"te", b"trailers"),
                (b"connection", b"close"),
            ),
        )
        client.submit_data(post, BODY)
        client.submit_headers(post, [(b"x-sum", b"1")], end_stream=True)
        big = client.get_available_stream_id()
        client.submit_headers(big, request(b"/big", b"GET", (b"x-big", BIG)), True)
        head = client.get_available_stream_id()
        client.submit_headers(head, request(b"/h", b"HEAD"), end_stream=True)
        _, requests = _exchange(client, server, log)
        assert {e.stream_id for e in requests if isinstance(e, HeadersReceived)} == {
            first,
            post,
            big,
            head,
        }
        server.submit_headers(first, [(b":status", b"103"), (b"link", b"</s>")])
        server.submit_headers(first, [(b":status", b"200")])
        server.submit_data(first, b"hello")
        server.submit_data(first, b"", end_stream=True)
        server.submit_headers(post, [(b":status", b"200"), (b"x-big", BIG)])
        server.submit_data(post, BODY)
        server.submit_headers(post, [(b"x-done", b"yes")], end_stream=True)
        server.submit_headers(big, [(b":status", b"204")], end_stream=True)
        # RFC 9110 §9.3.2: a HEAD response announces a body it does not send.
        # (h2 holds the client to content-length unless it knows the method.)
        server.submit_headers(head, [(b":status", b"200"), (b"content-length", b"5")])
        server.submit_data(head, b"", end_stream=True)
        responses, _ = _exchange(client, server, log)
        body = b"".join(
            e.data
            for e in responses
            if isinstance(e, DataReceived) and e.stream_id == post
        )
        assert body == BODY
    return log


def test_direct_send_paths_produce_h2s_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _transcript()
    monkeypatch.setattr(_h2, "FAST_SEND", False)
    monkeypatch.setattr(_h2, "MEMO", False)
    reference = _transcript()
    assert fast == reference


def test_the_checked_releases_take_the_fast_paths() -> None:
    # The environment pins the versions these paths were checked against.
    assert _h2.FAST_SEND and MEMO
    client = H2ClientProtocol()
    assert isinstance(client._conn.encoder, MemoEncoder)
    assert isinstance(client._conn.decoder, MemoDecoder)
    assert client._conn.decoder.max_header_list_size == 2 * 65_536


def test_long_header_block_goes_out_in_continuation_frames() -> None:
    client, server = H2ClientProtocol(), H2ServerProtocol()
    _exchange(client, server, [])
    client.submit_headers(1, request(b"/", b"GET", (b"x-big", BIG)), end_stream=True)
    frames = parse_frames(client.bytes_to_send())
    assert [type(f).__name__ for f in frames] == [
        "HeadersFrame",
        "ContinuationFrame",
    ]
    assert set(frames[0].flags) == {"END_STREAM"}
    assert set(frames[1].flags) == {"END_HEADERS"}


_NAMES = st.sampled_from([b":status", b"content-type", b"x-a", b"x-b", b"cookie"])
_VALUES = st.sampled_from([b"200", b"text/plain", b"1", b"22", b"v" * 300])
_FIELD = st.tuples(_NAMES, _VALUES)
_BLOCK = st.lists(
    st.one_of(_FIELD, _FIELD.map(lambda f: NeverIndexedHeaderTuple(*f))),
    max_size=6,
)
_STEP = st.one_of(_BLOCK, st.sampled_from([0, 64, 4096]))


@settings(max_examples=60, deadline=None)
@given(st.lists(_STEP, max_size=40))
def test_memo_coders_code_as_hpack_does(steps: list[object]) -> None:
    memo_encoder, plain_encoder = MemoEncoder(), Encoder()
    memo_decoder, plain_decoder = MemoDecoder(65_536), Decoder(65_536)
    for step in steps:
        if isinstance(step, int):
            # A peer's SETTINGS_HEADER_TABLE_SIZE (RFC 7541 §4.2).
            memo_encoder.header_table_size = plain_encoder.header_table_size = step
            continue
        assert isinstance(step, list)
        block = memo_encoder.encode(step)
        assert block == plain_encoder.encode(step)
        # hpack itself can fail here (it forgets a table size update that
        # is set twice), so failures are compared too.
        assert _outcome(memo_decoder, block) == _outcome(plain_decoder, block)


def _outcome(decoder: Decoder, block: bytes) -> object:
    try:
        return decoder.decode(block, raw=True)
    except HPACKError as exc:
        return type(exc)


def test_memo_remembers_only_blocks_that_leave_the_table_alone() -> None:
    encoder, decoder = MemoEncoder(), MemoDecoder(65_536)
    fields = [(b":status", b"200"), (b"x-new", b"1")]
    first = encoder.encode(fields)  # adds x-new to the table
    assert decoder.decode(first, raw=True) == fields
    assert encoder._memo == {} and decoder._memo == {}
    again = encoder.encode(fields)  # now fully indexed
    assert again != first and encoder._memo == {tuple(fields): again}
    assert decoder.decode(again, raw=True) == fields
    assert decoder.decode(again, raw=True) == fields
    assert list(decoder._memo) == [again]
    # A change to the table forgets what was remembered.
    # A change to the table forgets what was remembered: x-new moved.
    encoder.encode([(b"x-other", b"2")])
    moved = encoder.encode(fields)
    assert moved != again and encoder._memo == {tuple(fields): moved}
    # The memory stays bounded.
    status, new = (b":status", b"200"), (b"x-new", b"1")
    for n in range(3 * MAX_ENTRIES):
        encoder.encode([status] * (n % 8 + 1) + [new] * (n // 8 + 1))
        assert 0 < len(encoder._memo) <= MAX_ENTRIES


def test_memo_decoder_gives_each_caller_its_own_list() -> None:
    encoder, decoder = MemoEncoder(), MemoDecoder(65_536)
    block = encoder.encode([(b":status", b"200")])
    first = decoder.decode(block, raw=True)
    assert isinstance(first, list)
    first.append((b"x", b"y"))
    assert decoder.decode(block, raw=True) == [(b":status", b"200")]


def _connection(*, client_side: bool) -> _h2.H2Connection:
    conn = _h2.open_connection(Options(), client_side=client_side)
    conn.data_to_send()
    return conn


def test_direct_paths_refuse_as_h2_does() -> None:
    # Over the peer's concurrency limit, as h2's send_headers.
    conn = _connection(client_side=True)
    conn.remote_settings.max_concurrent_streams = 1
    conn.remote_settings.acknowledge()  # as if the server's SETTINGS said so
    conn.send_block(1, request())
    with pytest.raises(TooManyStreamsError):
        conn.send_block(3, request())
    # After h2 closed the connection, as h2's send_data.
    conn.close_connection()
    with pytest.raises(ProtocolError):
        conn.send_chunk(1, b"x")


def test_memo_decoder_memory_stays_bounded() -> None:
    encoder, decoder = MemoEncoder(), MemoDecoder(65_536)
    status = (b":status", b"200")
    for n in range(3 * MAX_ENTRIES):
        block = encoder.encode([status] * (n + 1))
        assert decoder.decode(block, raw=True) == [status] * (n + 1)
        assert 0 < len(decoder._memo) <= MAX_ENTRIES


def test_received_checker_remembers_small_blocks_that_passed() -> None:
    checker = ReceivedChecker(65_536, allow_protocol=False)
    block = [*request(b"/a"), (b"cookie", b"a=1"), (b"cookie", b"b=2")]
    first = checker.check(block, REQUEST)
    assert first == received(block, REQUEST, 65_536)
    assert checker.check(list(block), REQUEST) is first
    # A block that failed fails again; it is not remembered.
    bad = [*request(b"/a"), (b"connection", b"close")]
    for _ in range(2):
        with pytest.raises(MalformedHeaders):
            checker.check(bad, REQUEST)
    # Large blocks are not remembered, and the memory stays bounded.
    checker.check([*request(b"/"), (b"x-big", b"x" * 2000)], REQUEST)
    assert len(checker._memo) == 1
    for n in range(3 * ReceivedChecker.MAX_ENTRIES):
        checker.check(request(b"/%d" % n), REQUEST)
        assert 0 < len(checker._memo) <= ReceivedChecker.MAX_ENTRIES


def test_a_repeated_request_is_checked_against_the_server_limits() -> None:
    # The remembered check is per connection, with that connection's limits.
    small = H2ServerProtocol(max_header_list_size=200)
    large = H2ServerProtocol()
    for server in (small, large):
        client = H2ClientProtocol()
        _exchange(client, server, [])
        for _ in range(2):
            stream_id = client.get_available_stream_id()
            client.submit_headers(
                stream_id, request(b"/", b"GET", (b"x-a", b"a" * 100)), True
            )
            _, events = _exchange(client, server, [])
            kinds = {type(e).__name__ for e in events}
            expected = "StreamResetSent" if server is small else "HeadersReceived"
            assert kinds == {expected}
