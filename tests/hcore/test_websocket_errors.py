"""Frame-level bad input: each is closed with the right code (RFC 6455 §7.4.1),
the session turns terminal with a clear event, and nothing raises."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcore.websocket import (
    BytesMessage,
    CloseReceived,
    PerMessageDeflate,
    SessionState,
    SessionTerminated,
    TextMessage,
    WebSocketEvent,
    WebSocketSession,
)
from tests.hcore.websocket_helpers import close_payload, deflated, frame

DEFLATE = (PerMessageDeflate(),)


def _sent_close(session: WebSocketSession) -> tuple[int, bytes] | None:
    """The Close frame a server session queued: (code, reason), if any."""
    data = session.data_to_send()
    if not data:
        return None
    assert data[0] == 0x88, data  # FIN + Close, unmasked from a server
    size = data[1]
    payload = data[2 : 2 + size]
    assert len(data) == 2 + size  # nothing after the Close
    (code,) = struct.unpack("!H", payload[:2])
    return code, payload[2:]


def _fed(
    data: bytes,
    *,
    client: bool = False,
    extensions: tuple[PerMessageDeflate, ...] = (),
    max_message_size: int | None = 1000,
) -> tuple[WebSocketSession, list[WebSocketEvent]]:
    session = WebSocketSession(
        client, extensions=extensions, max_message_size=max_message_size
    )
    session.receive_data(data)
    return session, list(session.events())


def _assert_failed(
    session: WebSocketSession, events: list[WebSocketEvent], code: int
) -> None:
    assert events, "no event"
    last = events[-1]
    assert isinstance(last, SessionTerminated), events
    assert last.code == code, last
    assert last.reason
    assert session.state is SessionState.CLOSED
    # Terminal: more bytes are ignored, no more events, nothing more sent.
    session.receive_data(frame(0x1, b"more"))
    session.receive_eof()
    assert list(session.events()) == []


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        # RFC 6455 §10.4: too big, refused from the header alone.
        ("oversized frame", frame(0x2, length=1001), 1009),
        ("oversized 64-bit length", frame(0x2, length=2**40), 1009),
        (
            "oversized fragments",
            frame(0x2, b"a" * 600, fin=False) + frame(0x0, b"b" * 401),
            1009,
        ),
        # RFC 6455 §8.1: text must be UTF-8.
        ("invalid UTF-8", frame(0x1, b"\xff\xfe"), 1007),
        ("surrogate in UTF-8", frame(0x1, b"\xed\xa0\x80"), 1007),
        (
            "UTF-8 cut by the message end",
            frame(0x1, "é".encode()[:1], fin=False) + frame(0x0, b""),
            1007,
        ),
        (
            "invalid UTF-8 in close reason",
            frame(0x8, close_payload(1000, b"\xff")),
            1007,
        ),
        # RFC 6455 §5.1: a server must close on an unmasked frame.
        ("unmasked client frame", frame(0x1, b"hi", mask=None), 1002),
        # RFC 6455 §7.4: codes that may not appear in a Close frame.
        ("close code 999", frame(0x8, close_payload(999)), 1002),
        ("close code 1004", frame(0x8, close_payload(1004)), 1002),
        ("close code 1005", frame(0x8, close_payload(1005)), 1002),
        ("close code 1006", frame(0x8, close_payload(1006)), 1002),
        ("close code 1015", frame(0x8, close_payload(1015)), 1002),
        ("close code 2000", frame(0x8, close_payload(2000)), 1002),
        ("close code 5000", frame(0x8, close_payload(5000)), 1002),
        ("close with 1-byte payload", frame(0x8, b"\x03"), 1002),
        # RFC 6455 §5.2: reserved opcodes and bits.
        ("reserved data opcode", frame(0x3, b"x"), 1002),
        ("reserved control opcode", frame(0xB, b"x"), 1002),
        ("RSV1 without an extension", frame(0x1, b"x", rsv=4), 1002),
        ("RSV2", frame(0x1, b"x", rsv=2), 1002),
        ("RSV3", frame(0x1, b"x", rsv=1), 1002),
        # RFC 6455 §5.4-5.5: control frame rules, fragment order.
        ("fragmented ping", frame(0x9, b"x", fin=False), 1002),
        ("ping over 125 bytes", frame(0x9, b"x" * 126), 1002),
        ("continuation first", frame(0x0, b"x"), 1002),
        (
            "new message inside a fragmented one",
            frame(0x1, b"a", fin=False) + frame(0x1, b"b"),
            1002,
        ),
        ("non-minimal length", frame(0x2, b"x")[:1] + b"\xfe\x00\x05", 1002),
    ],
)
def test_bad_frames_at_a_server(name: str, data: bytes, code: int) -> None:
    session, events = _fed(data)
    _assert_failed(session, events, code)
    close = _sent_close(session)
    assert close is not None and close[0] == code, name


def test_masked_server_frame_at_a_client() -> None:
    session, events = _fed(frame(0x1, b"hi", mask=b"abcd"), client=True)
    _assert_failed(session, events, 1002)
    data = session.data_to_send()
    assert data[0] == 0x88 and data[1] & 0x80  # the client's Close is masked


def test_deflate_bomb_is_stopped_without_inflating_it() -> None:
    bomb = deflated(b"\0" * 50_000_000)  # ~50 kB on the wire
    assert len(bomb) < 100_000
    session, events = _fed(
        frame(0x2, bomb, rsv=4), extensions=DEFLATE, max_message_size=1_000_000
    )
    _assert_failed(session, events, 1009)
    assert _sent_close(session) is not None


def test_deflate_bomb_in_fragments() -> None:
    bomb = deflated(b"\0" * 5_000_000)
    half = len(bomb) // 2
    data = frame(0x2, bomb[:half], rsv=4, fin=False) + frame(0x0, bomb[half:])
    session, events = _fed(data, extensions=DEFLATE, max_message_size=100_000)
    _assert_failed(session, events, 1009)


def test_compressed_message_exactly_at_the_limit() -> None:
    data = frame(0x2, deflated(b"q" * 1000), rsv=4)
    _, events = _fed(data, extensions=DEFLATE, max_message_size=1000)
    assert events == [BytesMessage(b"q" * 1000)]


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("corrupt deflate data", frame(0x1, b"\xff\xff\xff\xff", rsv=4), 1007),
        (
            "RSV1 on a continuation",
            frame(0x1, deflated(b"a"), rsv=4, fin=False) + frame(0x0, b"", rsv=4),
            1002,
        ),
        ("RSV1 on a ping", frame(0x9, b"", rsv=4), 1002),
        # A stored block whose lengths only the appended tail completes, and
        # which they contradict (RFC 1951 §3.2.4).
        ("bad deflate tail", frame(0x2, b"\x00\x01", rsv=4), 1007),
        ("deflated invalid UTF-8", frame(0x1, deflated(b"\xff"), rsv=4), 1007),
    ],
)
def test_bad_compressed_frames(name: str, data: bytes, code: int) -> None:
    session, events = _fed(data, extensions=DEFLATE)
    _assert_failed(session, events, code)


def test_failure_after_our_close_sends_no_second_close() -> None:
    session = WebSocketSession(False)
    session.send_close(1000)
    session.data_to_send()
    session.receive_data(frame(0x1, b"\xff"))
    [event] = session.events()
    assert isinstance(event, SessionTerminated) and event.code == 1007
    assert session.data_to_send() == b""


def test_bytes_after_the_peers_close_are_ignored() -> None:
    session = WebSocketSession(False, auto_close=False)
    session.receive_data(frame(0x8, close_payload(1000)) + frame(0x1, b"\xff"))
    assert list(session.events()) == [CloseReceived(1000, "")]
    # Nothing is read (or buffered) after the peer's Close (RFC 6455 §5.5.1).
    for _ in range(100):
        session.receive_data(frame(0x2, b"x" * 100_000))
    assert list(session.events()) == []
    states = [session.state]
    assert session.data_to_send() == b""
    session.send_close(1000)
    states.append(session.state)
    assert states == [SessionState.REMOTE_CLOSING, SessionState.CLOSED]


def test_good_frames_before_the_bad_one_are_delivered() -> None:
    session, events = _fed(frame(0x1, b"fine") + frame(0x1, b"\xc3"))
    assert events[0] == TextMessage("fine")
    _assert_failed(session, events, 1007)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300), client=st.booleans(), deflate=st.booleans())
def test_random_bytes_never_raise(data: bytes, client: bool, deflate: bool) -> None:
    session = WebSocketSession(
        client, extensions=DEFLATE if deflate else (), max_message_size=200
    )
    for at in range(0, len(data), 7):
        session.receive_data(data[at : at + 7])
    events = list(session.events())
    for event in events[:-1]:
        assert not isinstance(event, SessionTerminated)
    session.receive_eof()
    assert session.state is SessionState.CLOSED
