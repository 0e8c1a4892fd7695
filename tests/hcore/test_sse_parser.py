"""The ``text/event-stream`` parser against the HTML standard's examples
(§9.2.4-9.2.6), every line ending, and the stream cut at every byte."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcore import LocalProtocolError, RemoteProtocolError
from hcore.sse import EventStreamError, EventStreamParser, ServerSentEvent


def parse(
    stream: bytes, parser: EventStreamParser | None = None
) -> list[ServerSentEvent]:
    parser = parser or EventStreamParser()
    events = parser.feed(stream)
    assert parser.feed_eof() == []
    return events


def parse_pieces(pieces: list[bytes]) -> list[ServerSentEvent]:
    parser = EventStreamParser()
    events: list[ServerSentEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    parser.feed_eof()
    return events


# The examples of HTML §9.2.4 ("Server-sent events intro") and §9.2.6.
STOCK = b"data: YHOO\ndata: +2\ndata: 10\n\n"
IDS = (
    b": test stream\n"
    b"\n"
    b"data: first event\n"
    b"id: 1\n"
    b"\n"
    b"data:second event\n"
    b"id\n"
    b"\n"
    b"data:  third event\n"
    b"\n"
)
FOUR_BLOCKS = b"data\n\ndata\ndata\n\ndata:"
SAME_TWICE = b"data:test\n\ndata: test\n\n"
TYPES = (
    b"event: add\ndata: 73857293\n\n"
    b"event: remove\ndata: 2153\n\n"
    b"event: add\ndata: 113411\n\n"
)

EXAMPLES: dict[str, tuple[bytes, list[ServerSentEvent]]] = {
    "stock": (STOCK, [ServerSentEvent("YHOO\n+2\n10")]),
    "ids": (
        IDS,
        [
            ServerSentEvent("first event", id="1"),
            # "id" alone resets the last event ID to the empty string.
            ServerSentEvent("second event", id=None),
            # Only one space after the colon is dropped.
            ServerSentEvent(" third event", id=None),
        ],
    ),
    # The first block fires an event with empty data, the middle one with a
    # single newline; the last is discarded, no blank line follows it.
    "four blocks": (FOUR_BLOCKS, [ServerSentEvent(""), ServerSentEvent("\n")]),
    "data:test and data: test": (
        SAME_TWICE,
        [ServerSentEvent("test"), ServerSentEvent("test")],
    ),
    "event types": (
        TYPES,
        [
            ServerSentEvent("73857293", event="add"),
            ServerSentEvent("2153", event="remove"),
            ServerSentEvent("113411", event="add"),
        ],
    ),
}


def _with_line_ending(stream: bytes, ending: bytes) -> bytes:
    return stream.replace(b"\n", ending)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_html_examples(name: str, ending: bytes) -> None:
    stream, expected = EXAMPLES[name]
    assert parse(_with_line_ending(stream, ending)) == expected


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_html_examples_cut_at_every_byte(name: str, ending: bytes) -> None:
    stream, expected = EXAMPLES[name]
    stream = b"\xef\xbb\xbf" + _with_line_ending(stream, ending)
    for cut in range(len(stream) + 1):
        assert parse_pieces([stream[:cut], stream[cut:]]) == expected, cut
    assert parse_pieces([stream[i : i + 1] for i in range(len(stream))]) == expected


ALL_EXAMPLES = b"".join(
    stream for stream, _ in EXAMPLES.values() if stream != FOUR_BLOCKS
)
ALL_EXPECTED = [
    e for stream, events in EXAMPLES.values() if stream != FOUR_BLOCKS for e in events
]


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
    ending=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    unicode=st.booleans(),
)
def test_examples_cut_anywhere(cuts: list[int], ending: bytes, unicode: bool) -> None:
    stream = _with_line_ending(ALL_EXAMPLES, ending)
    expected = ALL_EXPECTED
    if unicode:
        stream = (
            b"\xef\xbb\xbf"
            + stream
            + "data: ünï 🎉\n\n".encode().replace(b"\n", ending)
        )
        expected = [*ALL_EXPECTED, ServerSentEvent("ünï 🎉", id=None)]
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [
        stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)
    ]
    assert parse_pieces(pieces) == expected


def test_id_persists_and_null_ids_are_ignored() -> None:
    stream = (
        b"id: 7\ndata: a\n\n"
        b"data: b\n\n"  # keeps the last event ID
        b"id: 8\0x\ndata: c\n\n"  # an id with NULL is ignored
        b"id: 9\n\n"  # no data: no event, but the ID is set
        b"data: d\n\n"
    )
    parser = EventStreamParser()
    assert parse(stream, parser) == [
        ServerSentEvent("a", id="7"),
        ServerSentEvent("b", id="7"),
        ServerSentEvent("c", id="7"),
        ServerSentEvent("d", id="9"),
    ]
    assert parser.last_event_id == "9"


def test_initial_last_event_id() -> None:
    parser = EventStreamParser(last_event_id="41")
    assert parser.feed(b"data: x\n\n") == [ServerSentEvent("x", id="41")]


@pytest.mark.parametrize(
    ("line", "retry"),
    [
        (b"retry: 1500", 1500),
        (b"retry:0", 0),
        (b"retry: 15x", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry:", None),
        (b"retry: \xd9\xa3", None),  # an Arabic-Indic digit is not an ASCII digit
        (b"retry:  10", None),  # the second space stays in the value
    ],
)
def test_retry_takes_ascii_digits_only(line: bytes, retry: int | None) -> None:
    parser = EventStreamParser()
    events = parse(line + b"\ndata: x\n\n", parser)
    assert events == [ServerSentEvent("x", retry=retry)]
    assert parser.retry == retry


def test_retry_without_data_sets_the_delay_only() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"retry: 10\n\n") == []
    assert parser.retry == 10
    assert parser.feed(b"data: x\n\n") == [ServerSentEvent("x")]


def test_comments_unknown_fields_and_bare_names() -> None:
    stream = (
        b":comment\n"
        b": another\n"
        b"foo: bar\n"
        b"Data: case matters\n"
        b"data\n"
        b"event\n"
        b"data:value:with:colons\n"
        b"\n"
    )
    assert parse(stream) == [ServerSentEvent("\nvalue:with:colons", event="message")]


def test_only_one_leading_bom_is_stripped() -> None:
    bom = b"\xef\xbb\xbf"
    assert parse(bom + b"data: x\n\n") == [ServerSentEvent("x")]
    # A second BOM makes the first line's field name "\ufeffdata": ignored.
    assert parse(bom + bom + b"data: x\n\n") == []
    assert parse(b"data: " + bom + b"\n\n") == [ServerSentEvent("\ufeff")]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert parse(b"data: a\xffb\n\n") == [ServerSentEvent("a\ufffdb")]
    # A character cut at the end of one chunk comes whole with the next.
    assert parse_pieces([b"data: \xe2\x82", b"\xac\n\n"]) == [ServerSentEvent("€")]


def test_incomplete_event_at_eof_is_discarded_and_cr_lf_pairs_across_chunks() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: 1\r") == []
    assert parser.feed(b"\n\r") == [ServerSentEvent("1")]
    assert parser.feed(b"\ndata: 2\r\r") == [ServerSentEvent("2")]
    assert parser.feed(b"data: lost\n") == []
    assert parser.feed_eof() == []


def test_cr_remembered_across_empty_and_partial_chunks() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: x\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == []  # the second half of CRLF, not a blank line
    assert parser.feed(b"data: \xe2\x82") == []
    assert parser.feed(b"\xac\r") == []
    assert parser.feed(b"\xef") == []  # decodes to nothing yet
    assert parser.feed(b"\xbb\xbf\n") == []  # U+FEFF: a line with an unknown field
    assert parser.feed(b"\n") == [ServerSentEvent("x\n€")]


def test_line_limit() -> None:
    parser = EventStreamParser(max_line_size=10)
    assert parser.feed(b"data: 1234\n\n") == [ServerSentEvent("1234")]
    with pytest.raises(EventStreamError) as caught:
        parser.feed(b"data: 1234")
        parser.feed(b"5\n")
    assert isinstance(caught.value, RemoteProtocolError)
    assert "line" in str(caught.value)
    with pytest.raises(LocalProtocolError):
        parser.feed(b"\n")


def test_line_limit_without_a_line_end() -> None:
    parser = EventStreamParser(max_line_size=100)
    parser.feed(b"x" * 100)
    with pytest.raises(EventStreamError):
        parser.feed(b"x")


def test_event_limit() -> None:
    parser = EventStreamParser(max_event_size=10)
    assert parser.feed(b"data: 12345\ndata: 1234\n\n") == [
        ServerSentEvent("12345\n1234")
    ]
    with pytest.raises(EventStreamError, match="event"):
        parser.feed(b"data: 12345\ndata: 12345\n\n")


@pytest.mark.parametrize("option", ["max_line_size", "max_event_size"])
@pytest.mark.parametrize("value", [0, -1, 1.5])
def test_bad_limits(option: str, value: object) -> None:
    with pytest.raises(ValueError):
        EventStreamParser(**{option: value})  # type: ignore[arg-type]


def test_large_stream_in_big_chunks_is_linear() -> None:
    body = b"".join(b"id: %d\ndata: %s\n\n" % (n, b"x" * 100) for n in range(20_000))
    parser = EventStreamParser()
    events = []
    for at in range(0, len(body), 1_000_000):
        events.extend(parser.feed(body[at : at + 1_000_000]))
    assert len(events) == 20_000
    assert events[-1] == ServerSentEvent("x" * 100, id="19999")
