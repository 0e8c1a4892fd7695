"""HTTP/2 abuse: every known flood ends in GOAWAY with the right code, or in a
bounded queue.

A scripted peer (:class:`~tests.hcore.http2_helpers.RawClient`, or raw frames
fed to a client protocol) sends what no well-behaved endpoint sends, and each
test checks the answer (RFC 9113 section and CVE cited) and that what the
protocol holds stays bounded while the abuse lasts.
"""

from __future__ import annotations

from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    HeadersReceived,
    SendBufferDrained,
    StreamResetReceived,
)
from hcore.protocols.http2 import H2ClientProtocol, H2ServerProtocol
from hcore.protocols.http2._frames import FrameGate
from tests.hcore.http2_helpers import (
    RawClient,
    goaways,
    h2_pair,
    parse_frames,
    request,
    resets,
)
from tests.hcore.pairs import drain

CALM = 0xB
PROTOCOL_ERROR = 0x1
FLOW_CONTROL_ERROR = 0x3
FRAME_SIZE_ERROR = 0x6
REFUSED = 0x7
CANCEL = 0x8


def started_server(**limits: int) -> tuple[H2ServerProtocol, RawClient]:
    """A server whose SETTINGS the raw client has seen and acknowledged."""
    server = H2ServerProtocol(**limits)  # type: ignore[arg-type]
    client = RawClient(server)
    client.start()
    return server, client


def terminated(server: H2ServerProtocol | H2ClientProtocol) -> ConnectionTerminated:
    """The connection's last event, which must end it."""
    events = drain(server)
    assert events, "no event"
    last = events[-1]
    assert isinstance(last, ConnectionTerminated), events
    assert server.has_expired()
    return last


def frame_header(length: int, kind: int, flags: int = 0, stream_id: int = 0) -> bytes:
    """A raw 9-byte frame header (RFC 9113 §4.1)."""
    return (
        length.to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big")
    )


# -- rapid reset (CVE-2023-44487) ----------------------------------------------


def test_rapid_reset_flood_gets_enhance_your_calm() -> None:
    # CVE-2023-44487: open and reset at once, so the concurrency limit never
    # binds.  RFC 9113 §5.4.1 lets us end the connection with
    # ENHANCE_YOUR_CALM; the guard does after 100 of the last 200.
    server, client = started_server()
    fed = 0
    for n in range(1000):
        sid = 2 * n + 1
        client.send(*client.headers(sid, request(), end_stream=False))
        client.send(RstStreamFrame(sid, error_code=CANCEL))
        fed += 1
        if server.has_expired():
            break
    assert fed == 101
    events = drain(server)
    assert sum(isinstance(e, StreamResetReceived) for e in events) == 101
    assert events[-1] == ConnectionTerminated(
        CALM, "too many streams abandoned by the peer (rapid reset)"
    )
    assert [code for _, code in goaways(server.bytes_to_send())] == [CALM]
    # Nothing more is accepted.
    client.send(*client.headers(1001, request()))
    assert drain(server) == [] and server.bytes_to_send() == b""


# -- CONTINUATION flood (CVE-2024-27316 family) --------------------------------


def test_endless_empty_continuation_frames() -> None:
    # CVE-2024-27316 and relatives: a header block that never ends, in
    # CONTINUATION frames.  RFC 9113 §6.10 sets no limit, so we do: the
    # connection ends with ENHANCE_YOUR_CALM after a bounded number.
    server, client = started_server()
    client.send(HeadersFrame(1, client.encoder.encode(request())[:3]))
    fed = 0
    for _ in range(10_000):
        client.send(ContinuationFrame(1, b""))
        fed += 1
        if server.has_expired():
            break
    assert fed <= 64
    assert terminated(server).error_code == CALM
    assert goaways(server.bytes_to_send()) == [(0, CALM)]


def test_continuation_frames_over_the_header_block_bound() -> None:
    # CVE-2024-27316: full CONTINUATION frames pile up an encoded block far
    # over the advertised header list size before HPACK could refuse it;
    # refused after 4 times SETTINGS_MAX_HEADER_LIST_SIZE bytes.
    server, client = started_server(max_header_list_size=4096)
    client.send(HeadersFrame(1, b"\x00"))
    piece = b"\x00" * 16_000
    fed = 0
    for _ in range(40):
        client.send(ContinuationFrame(1, piece))
        fed += 1
        if server.has_expired():
            break
    assert fed * len(piece) <= 4 * 4096 + len(piece)
    assert terminated(server).error_code == CALM
    assert [code for _, code in goaways(server.bytes_to_send())] == [CALM]


def test_continuation_split_in_a_read_still_counts() -> None:
    # The gate reads frame headers across reads cut at any byte.
    server, _client = started_server()
    data = HeadersFrame(1, b"\x82").serialize() + b"".join(
        ContinuationFrame(1, b"").serialize() for _ in range(100)
    )
    for i in range(len(data)):
        server.bytes_received(data[i : i + 1])
        if server.has_expired():
            break
    assert i < len(data) - 1
    assert terminated(server).error_code == CALM


def test_header_block_in_many_small_frames_is_fine() -> None:
    # RFC 9113 §6.10: a block may be split anywhere; a normal block in 40
    # CONTINUATION frames passes.
    server, client = started_server()
    block = request(b"/", b"GET", (b"x-long", b"v" * 200))
    client.send(*client.headers(1, block, fragment=16))
    other = request(b"/", b"GET", (b"x-other", b"w" * 200))
    frames = client.headers(3, other, fragment=8)
    assert len(frames) > 20
    client.send(*frames)
    events = drain(server)
    assert [type(e) for e in events] == [HeadersReceived, HeadersReceived]


# -- HPACK bomb ----------------------------------------------------------------


def test_hpack_bomb_through_the_dynamic_table() -> None:
    # An HPACK bomb: one large field goes into the dynamic table (RFC 7541
    # §6.2.1), then one-byte references repeat it; 4 KiB on the wire decodes
    # to 160 KiB.  Over twice SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2)
    # the decoder stops and the connection ends with ENHANCE_YOUR_CALM.
    server, client = started_server(max_header_list_size=16_384)
    encoder = Encoder()
    block = encoder.encode(request() + [(b"x-bomb", b"a" * 3900)] * 40)
    assert len(block) < 4200
    client.send(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]))
    assert terminated(server).error_code == CALM
    assert goaways(server.bytes_to_send()) == [(0, CALM)]


def test_hpack_bomb_under_twice_the_limit_resets_the_stream() -> None:
    # RFC 9113 §6.5.2: a header list over the advertised size but under the
    # decoder's hard cap only resets its stream; the next one is served.
    server, client = started_server(max_header_list_size=16_384)
    block = client.encoder.encode(request() + [(b"x-bomb", b"a" * 3900)] * 6)
    client.send(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]))
    assert resets(client.read()) == [(1, PROTOCOL_ERROR)]
    client.send(*client.headers(3, request()))
    events = drain(server)
    assert events[-1] == HeadersReceived(3, tuple(request()), end_stream=True)
    assert not server.has_expired()


# -- SETTINGS and PING floods --------------------------------------------------


def test_ping_flood_without_reading_is_refused() -> None:
    # A PING must be answered (RFC 9113 §6.7); a peer that sends them and
    # never reads makes the answers pile up.  More than 10,000 owed since we
    # last took bytes to send: GOAWAY ENHANCE_YOUR_CALM.
    server, _client = started_server()
    ping = PingFrame(0, opaque_data=b"12345678").serialize()
    server.bytes_received(ping * 10_000)
    assert not server.has_expired()
    server.bytes_received(ping)
    assert terminated(server).error_code == CALM
    out = server.bytes_to_send()
    assert len(out) <= 10_000 * 17 + 100
    assert [code for _, code in goaways(out)] == [CALM]


def test_settings_flood_without_reading_is_refused() -> None:
    # RFC 9113 §6.5.3: every SETTINGS is acknowledged; the same bound.
    server, _client = started_server()
    settings = SettingsFrame(0, settings={0x4: 65_535}).serialize()
    for _ in range(10):
        server.bytes_received(settings * 1000)
    assert not server.has_expired()
    server.bytes_received(settings)
    assert terminated(server).error_code == CALM


def test_pings_answered_while_read_are_fine() -> None:
    # The bound counts answers not yet taken: a peer that reads them may
    # ping as much as it likes.
    server, _client = started_server()
    ping = PingFrame(0, opaque_data=b"12345678").serialize()
    for _ in range(30):
        server.bytes_received(ping * 1000)
        out = server.bytes_to_send()
        assert len(out) == 1000 * 17
    assert drain(server) == [] and not server.has_expired()


# -- zero-window stall ---------------------------------------------------------


def test_peer_that_never_opens_its_window() -> None:
    # RFC 9113 §6.9: a peer with a zero window takes no DATA.  What the
    # application submitted waits in the protocol, is reported by
    # pending_data_size, never grows by itself, and no DATA is sent.
    server = H2ServerProtocol()
    client = RawClient(server)
    client.send(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        SettingsFrame(0, settings={0x4: 0}),
    )
    client.read()
    client.send(SettingsFrame(0, flags=["ACK"]), *client.headers(1, request()))
    [headers] = drain(server)
    assert isinstance(headers, HeadersReceived)
    server.submit_headers(1, [(b":status", b"200")])
    body = b"x" * (1 << 20)
    server.submit_data(1, body, end_stream=True)
    assert server.pending_data_size(1) == len(body)
    for _ in range(100):
        client.send(PingFrame(0, opaque_data=b"12345678"))
        sent = client.read()
        assert not any(isinstance(f, DataFrame) for f in sent)
    assert server.pending_data_size(1) == len(body)
    assert drain(server) == []
    # The window opens: the data flows, and the drain is reported.
    client.send(WindowUpdateFrame(1, window_increment=len(body)))
    client.send(WindowUpdateFrame(0, window_increment=len(body)))
    got = b"".join(f.data for f in client.read() if isinstance(f, DataFrame))
    assert got == body
    assert server.pending_data_size(1) == 0
    assert drain(server) == [SendBufferDrained(1)]


def test_slow_reader_bounds_what_the_peer_may_send() -> None:
    # RFC 9113 §6.9.1: an application that takes no events stops the
    # window updates, so what the server holds is bounded by the stream's
    # window (65,535); a peer sending past it gets FLOW_CONTROL_ERROR.
    server, client = started_server()
    client.send(*client.headers(1, request(b"/", b"POST"), end_stream=False))
    for _ in range(3):
        client.send(DataFrame(1, b"x" * 16_384))
    client.send(DataFrame(1, b"x" * (65_535 - 3 * 16_384)))
    assert not server.has_expired()
    assert client.read() == []  # nothing taken: no credit returned
    # One byte more is over the window.
    client.send(DataFrame(1, b"x"))
    frames = client.read()
    codes = [code for _, code in resets(frames)]
    codes += [code for _, code in goaways(b"".join(f.serialize() for f in frames))]
    assert FLOW_CONTROL_ERROR in codes


# -- too many streams ----------------------------------------------------------


def test_too_many_streams_are_refused_then_calmed() -> None:
    # RFC 9113 §5.1.2: streams over SETTINGS_MAX_CONCURRENT_STREAMS are
    # refused (REFUSED_STREAM); a client that keeps opening them after
    # acknowledging the limit is abusing it (ENHANCE_YOUR_CALM).  The
    # streams held never exceed the limit.
    server, client = started_server(max_concurrent_streams=10)
    opened = 0
    for n in range(1000):
        client.send(*client.headers(2 * n + 1, request(), end_stream=False))
        opened += 1
        if server.has_expired():
            break
        assert len(server._streams) <= 10
    assert opened <= 10 + 101
    frames = client.read()
    assert resets(frames)[0] == (21, REFUSED)
    events = drain(server)
    assert sum(isinstance(e, HeadersReceived) for e in events) == 10
    assert events[-1] == ConnectionTerminated(
        CALM, "too many streams abandoned by the peer (rapid reset)"
    )
    assert goaways(b"".join(f.serialize() for f in frames)) == [(19, CALM)]


# -- frame size (RFC 9113 §4.2) ------------------------------------------------


def test_oversized_frame_is_refused_on_its_header() -> None:
    # RFC 9113 §4.2: a frame over SETTINGS_MAX_FRAME_SIZE is a
    # FRAME_SIZE_ERROR; the 9-byte header is enough to know, so not one byte
    # of the announced 16 MiB needs to arrive.
    server, _client = started_server()
    server.bytes_received(frame_header((1 << 24) - 1, 0x0, 0, 1))
    assert terminated(server).error_code == FRAME_SIZE_ERROR
    assert goaways(server.bytes_to_send()) == [(0, FRAME_SIZE_ERROR)]


def test_oversized_frame_header_split_byte_by_byte() -> None:
    server, _client = started_server()
    header = frame_header(16_385, 0x6)
    for byte in header:
        assert not server.has_expired()
        server.bytes_received(bytes([byte]))
    assert terminated(server).error_code == FRAME_SIZE_ERROR


def test_frame_of_exactly_the_maximum_size_is_fine() -> None:
    # RFC 9113 §4.2: up to SETTINGS_MAX_FRAME_SIZE (16,384 by default).
    server, client = started_server()
    client.send(*client.headers(1, request(b"/", b"POST"), end_stream=False))
    client.send(DataFrame(1, b"x" * 16_384))
    events = drain(server)
    assert events[-1] == DataReceived(1, b"x" * 16_384)


def test_oversized_frame_after_the_preface_in_one_read() -> None:
    # The gate skips the client preface and earlier frames in the same read.
    server = H2ServerProtocol()
    server.bytes_received(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + SettingsFrame(0).serialize()
        + PingFrame(0, opaque_data=b"12345678").serialize()
        + frame_header(20_000, 0x0, 0, 1)
    )
    assert terminated(server).error_code == FRAME_SIZE_ERROR


def test_client_refuses_an_oversized_frame_from_the_server() -> None:
    client = H2ClientProtocol()
    client.bytes_to_send()
    client.bytes_received(SettingsFrame(0).serialize() + frame_header(1 << 20, 0x1))
    assert terminated(client).error_code == FRAME_SIZE_ERROR
    assert goaways(client.bytes_to_send().split(b"\r\n\r\nSM\r\n\r\n")[-1]) == [
        (0, FRAME_SIZE_ERROR)
    ]


def test_bad_preface_is_still_h2s_protocol_error() -> None:
    # RFC 9113 §3.4: a wrong preface is a PROTOCOL_ERROR, whatever the bytes
    # after it would announce as a frame.
    server = H2ServerProtocol()
    server.bytes_received(b"GET / HTTP/1.1\r\n\r\n" + frame_header(1 << 23, 0))
    assert terminated(server).error_code == PROTOCOL_ERROR


def test_a_normal_conversation_passes_the_gate() -> None:
    pair = h2_pair()
    sid = pair.client.get_available_stream_id()
    pair.client.submit_headers(sid, request(b"/", b"POST"))
    pair.client.submit_data(sid, b"y" * 200_000, end_stream=True)
    for _ in range(100):
        pair.pump()
        events = pair.server_events()
        if any(isinstance(e, DataReceived) and e.end_stream for e in events):
            break
    assert not pair.server.has_expired() and not pair.client.has_expired()
    frames: list[Frame] = parse_frames(pair.wire[-1][1]) if pair.wire else []
    assert all(len(f.serialize()) <= 16_384 + 9 for f in frames)


def test_gate_stands_aside_after_a_bad_preface() -> None:
    # h2 reports the bad preface; until then the gate judges nothing.
    gate = FrameGate(
        server=True,
        max_frame_size=16_384,
        max_header_list_size=256,
        max_continuations=4,
        max_owed_acks=4,
    )
    assert gate.feed(b"PRI * HTTP/1.1") is None
    assert gate.feed(frame_header(1 << 20, 0)) is None
