"""Writing event streams (round-trip through the parser) and the reconnecting
client's state: Last-Event-ID, the retry delay, response checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcore import LocalProtocolError
from hcore.sse import (
    DEFAULT_RETRY_DELAY,
    EventSourceState,
    EventStreamError,
    EventStreamParser,
    ServerSentEvent,
    encode_comment,
    encode_event,
)


def test_encoding_shape() -> None:
    assert encode_event(ServerSentEvent("hello")) == b"data: hello\n\n"
    assert encode_event(
        ServerSentEvent("a\nb\r\nc\rd", event="update", id="42", retry=2500)
    ) == (b"event: update\nid: 42\nretry: 2500\ndata: a\ndata: b\ndata: c\ndata: d\n\n")
    assert encode_event(ServerSentEvent("")) == b"data: \n\n"
    assert encode_event(ServerSentEvent(" lead", id="")) == b"id: \ndata:  lead\n\n"
    assert encode_comment() == b":\n"
    assert encode_comment("keep-alive\nping") == b":keep-alive\n:ping\n"


@pytest.mark.parametrize(
    "event",
    [
        ServerSentEvent("x", event="a\nb"),
        ServerSentEvent("x", id="1\r"),
        ServerSentEvent("x", id="1\0"),
        ServerSentEvent("x", retry=-1),
    ],
)
def test_unencodable_events(event: ServerSentEvent) -> None:
    with pytest.raises(LocalProtocolError):
        encode_event(event)


_line = st.text(
    st.characters(codec="utf-8", exclude_characters="\r\n"),
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.text(max_size=60),
    event=_line,
    id=st.one_of(st.none(), _line.filter(lambda s: "\0" not in s)),
    retry=st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
    comment=st.one_of(st.none(), st.text(max_size=20)),
)
def test_round_trip(
    data: str, event: str, id: str | None, retry: int | None, comment: str | None
) -> None:
    original = ServerSentEvent(data, event=event or "message", id=id, retry=retry)
    wire = encode_event(original)
    if comment is not None:
        wire = encode_comment(comment) + wire
    [parsed] = EventStreamParser().feed(wire)
    expected_data = data.replace("\r\n", "\n").replace("\r", "\n")
    assert parsed == ServerSentEvent(
        expected_data, event=event or "message", id=id or None, retry=retry
    )


def test_stream_of_events_round_trips_cut_anywhere() -> None:
    events = [
        ServerSentEvent("first", id="1"),
        ServerSentEvent("second\nline", event="custom", id="2"),
        ServerSentEvent("третий", id="3", retry=100),
    ]
    wire = b"".join(encode_comment("hi") + encode_event(e) for e in events)
    for cut in range(len(wire) + 1):
        parser = EventStreamParser()
        assert parser.feed(wire[:cut]) + parser.feed(wire[cut:]) == events


# -- the reconnecting client's state ---------------------------------------------


def test_first_request_headers() -> None:
    state = EventSourceState()
    assert state.last_event_id is None
    assert state.retry_delay == DEFAULT_RETRY_DELAY
    assert state.request_headers() == (
        (b"accept", b"text/event-stream"),
        (b"cache-control", b"no-store"),
    )
    assert state.request_headers([(b"authorization", b"Bearer x")])[-1] == (
        b"authorization",
        b"Bearer x",
    )


def _last_id(state: EventSourceState) -> str | None:
    return state.last_event_id


def test_state_follows_the_stream_across_reconnections() -> None:
    state = EventSourceState(retry_delay=1.0)
    assert state.feed(b"retry: 250\nid: a\ndata: 1\n\ndata: 2") == [
        ServerSentEvent("1", id="a", retry=250)
    ]
    assert state.retry_delay == 0.25
    assert _last_id(state) == "a"
    # The stream breaks mid-event: that event is lost, the ID and delay stay.
    state.stream_ended()
    assert (b"last-event-id", b"a") in state.request_headers()
    assert state.feed(b"\n\ndata: 3\n\n") == [ServerSentEvent("3", id="a")]
    assert state.feed(b"id\ndata: 4\n\n") == [ServerSentEvent("4")]
    assert _last_id(state) is None
    assert all(name != b"last-event-id" for name, _ in state.request_headers())


def test_resuming_from_a_known_id() -> None:
    state = EventSourceState(last_event_id="99")
    assert (b"last-event-id", b"99") in state.request_headers()
    assert state.feed(b"data: x\n\n") == [ServerSentEvent("x", id="99")]


@pytest.mark.parametrize(
    ("status", "content_type", "ok"),
    [
        (200, b"text/event-stream", True),
        (200, b"Text/Event-Stream; charset=utf-8", True),
        (200, b"text/plain", False),
        (200, None, False),
        (204, b"text/event-stream", False),
        (500, b"text/event-stream", False),
    ],
)
def test_response_check(status: int, content_type: bytes | None, ok: bool) -> None:
    headers = [] if content_type is None else [(b"content-type", content_type)]
    assert EventSourceState().check_response(status, headers) is ok


def test_limits_apply_and_a_new_stream_starts_clean() -> None:
    state = EventSourceState(max_line_size=8, max_event_size=100)
    with pytest.raises(EventStreamError):
        state.feed(b"data: 123456789")
    with pytest.raises(LocalProtocolError):
        state.feed(b"\n")
    state.stream_ended()
    assert state.feed(b"data: 1\n\n") == [ServerSentEvent("1")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retry_delay": -1},
        {"retry_delay": "3"},
        {"last_event_id": "a\nb"},
        {"last_event_id": "\0"},
    ],
)
def test_bad_state_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EventSourceState(**kwargs)  # type: ignore[arg-type]
