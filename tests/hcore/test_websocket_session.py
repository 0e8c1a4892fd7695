"""The WebSocket session on its own: messages, fragments, ping/pong, closing,
permessage-deflate, limits and misuse, client against server in memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcore import LocalProtocolError
from hcore.websocket import (
    BytesFragment,
    BytesMessage,
    CloseReceived,
    PerMessageDeflate,
    PingReceived,
    PongReceived,
    SessionState,
    SessionTerminated,
    TextFragment,
    TextMessage,
    WebSocketEvent,
    WebSocketSession,
)
from tests.hcore.websocket_helpers import SessionPair, deflated, frame

DEFLATE = (PerMessageDeflate(),)


def _state(session: WebSocketSession) -> SessionState:
    return session.state


def _frames(data: bytes, masked: bool) -> list[tuple[int, int, int]]:
    """(first byte, payload length, offset) of each frame in ``data``."""
    out = []
    at = 0
    while at < len(data):
        first, second = data[at], data[at + 1]
        size = second & 0x7F
        at += 2
        if size == 126:
            size = int.from_bytes(data[at : at + 2], "big")
            at += 2
        elif size == 127:
            size = int.from_bytes(data[at : at + 8], "big")
            at += 8
        assert bool(second & 0x80) == masked
        at += 4 if masked else 0
        out.append((first, size, at))
        at += size
    return out


@pytest.mark.parametrize("extensions", [(), DEFLATE], ids=["plain", "deflate"])
def test_text_and_binary_both_ways(extensions: tuple[PerMessageDeflate, ...]) -> None:
    pair = SessionPair(extensions)
    pair.client.send_text("hello")
    pair.client.send_bytes(b"\x00\x01")
    pair.client.send_text("")
    pair.server.send_text("ünïcödé ✓ 🎉")
    pair.server.send_bytes(b"")
    at_client, at_server = pair.flush()
    assert at_server == [
        TextMessage("hello"),
        BytesMessage(b"\x00\x01"),
        TextMessage(""),
    ]
    assert at_client == [TextMessage("ünïcödé ✓ 🎉"), BytesMessage(b"")]
    assert pair.client.client and not pair.server.client


def test_client_masks_and_server_does_not() -> None:
    pair = SessionPair()
    pair.client.send_text("abc")
    pair.server.send_text("abc")
    from_client = pair.client.data_to_send()
    from_server = pair.server.data_to_send()
    assert from_server == b"\x81\x03abc"
    [(first, size, at)] = _frames(from_client, masked=True)
    assert (first, size) == (0x81, 3)
    assert from_client[at:] != b"abc" or from_client[at - 4 : at] == b"\0\0\0\0"


@pytest.mark.parametrize("extensions", [(), DEFLATE], ids=["plain", "deflate"])
def test_large_messages_are_fragmented(
    extensions: tuple[PerMessageDeflate, ...],
) -> None:
    pair = SessionPair(
        extensions,
        client_options={"fragment_size": 1000},
        server_options={"fragment_size": 1000},
    )
    body = bytes(range(256)) * 40  # 10,240 bytes: 11 frames
    pair.server.send_bytes(body)
    wire = pair.server.data_to_send()
    frames = _frames(wire, masked=False)
    assert len(frames) == 11
    opcodes = [first & 0x0F for first, _, _ in frames]
    fins = [bool(first & 0x80) for first, _, _ in frames]
    assert opcodes == [2] + [0] * 10
    assert fins == [False] * 10 + [True]
    if not extensions:
        assert [size for _, size, _ in frames] == [1000] * 10 + [240]
    pair.client.receive_data(wire)
    assert list(pair.client.events()) == [BytesMessage(body)]
    # Text is cut between characters only: 3-byte characters, 1000-byte limit.
    text = "€" * 2000
    pair.client.send_text(text)
    wire = pair.client.data_to_send()
    if not extensions:
        sizes = [size for _, size, _ in _frames(wire, masked=True)]
        assert all(size % 3 == 0 and size <= 1000 for size in sizes)
    pair.server.receive_data(wire)
    assert list(pair.server.events()) == [TextMessage(text)]


def test_tiny_fragment_size_still_sends_whole_characters() -> None:
    pair = SessionPair(client_options={"fragment_size": 1})
    pair.client.send_text("a€b")
    wire = pair.client.data_to_send()
    assert [size for _, size, _ in _frames(wire, masked=True)] == [1, 3, 1]
    pair.server.receive_data(wire)
    assert list(pair.server.events()) == [TextMessage("a€b")]


@pytest.mark.parametrize("extensions", [(), DEFLATE], ids=["plain", "deflate"])
def test_sending_and_receiving_in_parts(
    extensions: tuple[PerMessageDeflate, ...],
) -> None:
    pair = SessionPair(extensions, server_options={"stream_messages": True})
    pair.client.send_text("hel", message_finished=False)
    with pytest.raises(LocalProtocolError):
        pair.client.send_bytes(b"other type in the middle")
    pair.client.send_ping(b"between")
    pair.client.send_text("lo ", message_finished=False)
    pair.client.send_text("wörld")
    pair.client.send_bytes(b"ab", message_finished=False)
    pair.client.send_bytes(b"cd")
    _, at_server = pair.flush()
    text = [e for e in at_server if isinstance(e, TextFragment)]
    assert "".join(e.data for e in text) == "hello wörld"
    assert [e.message_finished for e in text][-1] is True
    assert not any(e.message_finished for e in text[:-1])
    assert PingReceived(b"between") in at_server
    data = [e for e in at_server if isinstance(e, BytesFragment)]
    assert b"".join(e.data for e in data) == b"abcd"
    assert data[-1].message_finished


def test_whole_messages_join_fragments_around_control_frames() -> None:
    server = WebSocketSession(False)
    server.receive_data(
        frame(0x1, b"caf", fin=False)
        + frame(0x9, b"ping")
        + frame(0x0, "é".encode()[:1], fin=False)
        + frame(0x0, "é".encode()[1:] + b"!", fin=True)
    )
    assert list(server.events()) == [PingReceived(b"ping"), TextMessage("café!")]
    pong = server.data_to_send()
    assert pong == b"\x8a\x04ping"


def test_auto_pong_can_be_turned_off() -> None:
    pair = SessionPair(server_options={"auto_pong": False})
    pair.client.send_ping(b"1")
    at_client, at_server = pair.flush()
    assert at_server == [PingReceived(b"1")]
    assert at_client == []
    pair.server.send_pong(b"1")
    pair.server.send_pong(b"unsolicited")
    at_client, _ = pair.flush()
    assert at_client == [PongReceived(b"1"), PongReceived(b"unsolicited")]


@pytest.mark.parametrize(
    ("code", "reason", "echo"),
    [
        (1000, "", 1000),
        (1001, "going away", 1001),
        (4999, "é" * 61, 4999),
        (None, "", 1005),
    ],
)
def test_close_handshake_started_by_the_client(
    code: int | None, reason: str, echo: int
) -> None:
    pair = SessionPair()
    pair.client.send_close(code, reason)
    assert _state(pair.client) is SessionState.LOCAL_CLOSING
    with pytest.raises(LocalProtocolError):
        pair.client.send_text("after close")
    with pytest.raises(LocalProtocolError):
        pair.client.send_close()
    at_client, at_server = pair.flush()
    assert at_server == [CloseReceived(echo, reason)]
    assert at_client == [CloseReceived(echo, "")]
    assert _state(pair.client) is _state(pair.server) is SessionState.CLOSED
    with pytest.raises(LocalProtocolError):
        pair.client.send_ping()
    pair.client.receive_data(b"\x81\x01x")  # ignored once closed
    pair.client.receive_eof()
    assert list(pair.client.events()) == []


def test_messages_still_arrive_while_closing() -> None:
    pair = SessionPair()
    pair.server.send_text("in flight")
    pair.client.send_close(1000)
    pair.client.receive_data(pair.server.data_to_send())
    assert list(pair.client.events()) == [TextMessage("in flight")]
    pair.client.send_ping(b"pings are allowed while closing")
    at_client, at_server = pair.flush()
    assert at_server[-1] == CloseReceived(1000, "")
    assert at_client[-1] == CloseReceived(1000, "")


def test_close_answered_by_hand_without_auto_close() -> None:
    pair = SessionPair(server_options={"auto_close": False})
    pair.client.send_close(3000, "done")
    _, at_server = pair.flush()
    assert at_server == [CloseReceived(3000, "done")]
    assert _state(pair.server) is SessionState.REMOTE_CLOSING
    pair.server.send_text("a last word")  # allowed until our Close goes out
    pair.server.send_close(1000, "ok")
    assert _state(pair.server) is SessionState.CLOSED
    at_client, _ = pair.flush()
    assert at_client == [TextMessage("a last word"), CloseReceived(1000, "ok")]
    assert _state(pair.client) is SessionState.CLOSED


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_unsendable_close_codes_are_refused(code: int) -> None:
    session = WebSocketSession(True)
    with pytest.raises(LocalProtocolError):
        session.send_close(code)
    assert _state(session) is SessionState.OPEN
    assert session.data_to_send() == b""


def test_close_argument_misuse() -> None:
    session = WebSocketSession(False)
    with pytest.raises(LocalProtocolError):
        session.send_close(None, "a reason without a code")
    with pytest.raises(LocalProtocolError):
        session.send_close(1000, "x" * 124)
    with pytest.raises(LocalProtocolError):
        session.send_ping(b"x" * 126)
    with pytest.raises(LocalProtocolError):
        session.send_pong(b"x" * 126)
    assert session.data_to_send() == b""
    session.send_close(1000, "x" * 123)
    assert len(session.data_to_send()) == 2 + 125


@pytest.mark.parametrize(
    "options",
    [
        {"max_message_size": 0},
        {"max_message_size": 1.5},
        {"fragment_size": 0},
        {"extensions": DEFLATE * 2},
    ],
)
def test_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WebSocketSession(True, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("extensions", [(), DEFLATE], ids=["plain", "deflate"])
def test_max_message_size_allows_exactly_the_limit(
    extensions: tuple[PerMessageDeflate, ...],
) -> None:
    pair = SessionPair(
        extensions,
        client_options={"fragment_size": 300},
        server_options={"max_message_size": 1000},
    )
    pair.client.send_bytes(b"a" * 1000)
    pair.client.send_text("b" * 1000)
    _, at_server = pair.flush()
    assert at_server == [BytesMessage(b"a" * 1000), TextMessage("b" * 1000)]
    pair.client.send_bytes(b"a" * 1001)
    at_client, at_server = pair.flush()
    [failed] = at_server
    assert isinstance(failed, SessionTerminated) and failed.code == 1009
    assert at_client == [CloseReceived(1009, failed.reason[:123])]


@pytest.mark.parametrize("extensions", [(), DEFLATE], ids=["plain", "deflate"])
def test_no_message_limit(extensions: tuple[PerMessageDeflate, ...]) -> None:
    pair = SessionPair(extensions, server_options={"max_message_size": None})
    pair.client.send_bytes(b"z" * 3_000_000)
    _, at_server = pair.flush()
    assert at_server == [BytesMessage(b"z" * 3_000_000)]


def test_streamed_empty_fragments_are_skipped_until_the_end() -> None:
    server = WebSocketSession(False, stream_messages=True)
    server.receive_data(
        frame(0x2, b"", fin=False) + frame(0x0, b"a", fin=False) + frame(0x0, b"")
    )
    assert list(server.events()) == [
        BytesFragment(b"a", message_finished=False),
        BytesFragment(b"", message_finished=True),
    ]


def test_deflate_context_takeover_off() -> None:
    agreed = (
        PerMessageDeflate(
            client_no_context_takeover=True, server_no_context_takeover=True
        ),
    )
    pair = SessionPair(agreed)
    sizes = []
    for _ in range(3):
        pair.client.send_text("same text " * 50)
        to_server = pair.client.data_to_send()
        pair.server.send_text("same text " * 50)
        to_client = pair.server.data_to_send()
        sizes += [len(to_server), len(to_client)]
        pair.server.receive_data(to_server)
        pair.client.receive_data(to_client)
        assert list(pair.server.events()) == [TextMessage("same text " * 50)]
        assert list(pair.client.events()) == [TextMessage("same text " * 50)]
    # Without takeover every message costs the same; with it the repeats
    # would shrink to a few bytes.
    assert len(set(sizes[0::2])) == 1 and len(set(sizes[1::2])) == 1
    with_takeover = SessionPair(DEFLATE)
    with_takeover.client.send_text("same text " * 50)
    first = len(with_takeover.client.data_to_send())
    with_takeover.client.send_text("same text " * 50)
    assert len(with_takeover.client.data_to_send()) < first


def test_deflate_with_small_windows() -> None:
    agreed = (PerMessageDeflate(client_max_window_bits=9, server_max_window_bits=9),)
    pair = SessionPair(agreed)
    text = "".join(chr(0x41 + (i * 7919) % 50) for i in range(20_000))
    pair.client.send_text(text)
    pair.server.send_text(text)
    at_client, at_server = pair.flush()
    assert at_client == at_server == [TextMessage(text)]


@settings(max_examples=40, deadline=None)
@given(
    messages=st.lists(
        st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=8
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=30),
    deflate=st.booleans(),
    fragment=st.integers(min_value=1, max_value=200),
)
def test_any_messages_cut_anywhere(
    messages: list[str | bytes], cuts: list[int], deflate: bool, fragment: int
) -> None:
    extensions = DEFLATE if deflate else ()
    client = WebSocketSession(True, extensions=extensions, fragment_size=fragment)
    server = WebSocketSession(False, extensions=extensions)
    for message in messages:
        if isinstance(message, str):
            client.send_text(message)
        else:
            client.send_bytes(message)
    wire = client.data_to_send()
    at = 0
    for cut in cuts:
        server.receive_data(wire[at : at + cut])
        at += cut
    server.receive_data(wire[at:])
    expected: list[WebSocketEvent] = [
        TextMessage(m) if isinstance(m, str) else BytesMessage(m) for m in messages
    ]
    assert list(server.events()) == expected


def test_next_event_one_at_a_time() -> None:
    pair = SessionPair()
    assert pair.server.next_event() is None
    pair.client.send_text("1")
    pair.client.send_text("2")
    pair.server.receive_data(pair.client.data_to_send())
    assert pair.server.next_event() == TextMessage("1")
    assert pair.server.next_event() == TextMessage("2")
    assert pair.server.next_event() is None


def test_uncompressed_messages_are_allowed_after_deflate_is_agreed() -> None:
    # RFC 7692 §6: RSV1 marks each compressed message; others are plain.
    server = WebSocketSession(False, extensions=DEFLATE)
    server.receive_data(
        frame(0x1, b"plain")
        + frame(0x1, deflated(b"packed"), rsv=4)
        + frame(0x2, b"raw", fin=False)
        + frame(0x0, b" bytes")
    )
    assert list(server.events()) == [
        TextMessage("plain"),
        TextMessage("packed"),
        BytesMessage(b"raw bytes"),
    ]
