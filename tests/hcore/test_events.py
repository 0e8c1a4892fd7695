"""Events compare by value, hash, and print readably."""

from __future__ import annotations

import dataclasses

import pytest

from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    GoawayReceived,
    HeadersReceived,
    InformationalResponseReceived,
    SendBufferDrained,
    StreamResetReceived,
    StreamResetSent,
    TrailersReceived,
)


def test_header_events_compare_whatever_the_sequence_type() -> None:
    as_list = HeadersReceived(1, [(b":status", b"200")], end_stream=True)
    as_tuple = HeadersReceived(1, ((b":status", b"200"),), end_stream=True)
    assert as_list == as_tuple
    assert hash(as_list) == hash(as_tuple)
    assert as_list.headers == ((b":status", b"200"),)
    assert TrailersReceived(3, [(b"x", b"y")]) == TrailersReceived(3, ((b"x", b"y"),))
    assert InformationalResponseReceived(1, [(b":status", b"100")]).headers == (
        (b":status", b"100"),
    )


def test_events_are_frozen() -> None:
    event = DataReceived(1, b"abc")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = b"other"  # type: ignore[misc]


def test_reprs_are_readable() -> None:
    assert repr(HeadersReceived(1, [(b":method", b"GET")])) == (
        "HeadersReceived(stream_id=1, headers=((b':method', b'GET'),), "
        "end_stream=False)"
    )
    assert repr(DataReceived(5, b"hi", end_stream=True)) == (
        "DataReceived(stream_id=5, data=b'hi' (2 bytes), end_stream=True)"
    )
    long = repr(DataReceived(1, b"x" * 1000))
    assert "(1000 bytes)" in long
    assert len(long) < 120
    assert (
        repr(StreamResetReceived(3, 8))
        == "StreamResetReceived(stream_id=3, error_code=8)"
    )
    assert "unprocessed_stream_ids=(5, 7)" in repr(GoawayReceived(3, 0, (5, 7)))


def test_defaults() -> None:
    assert ConnectionTerminated() == ConnectionTerminated(0, None)
    assert StreamResetSent(1).error_code == 0
    assert GoawayReceived(0).unprocessed_stream_ids == ()
    assert SendBufferDrained(9).stream_id == 9


def test_written_out_constructors_act_as_the_dataclass_ones() -> None:
    # HeadersReceived and DataReceived write their __init__ out (speed):
    # keywords, positions, defaults and dataclasses.replace still work.
    head = HeadersReceived(headers=[(b":status", b"200")], stream_id=1)
    assert head == HeadersReceived(1, ((b":status", b"200"),), False)
    assert dataclasses.replace(head, end_stream=True).end_stream
    assert dataclasses.replace(head, end_stream=True).headers == head.headers
    assert [f.name for f in dataclasses.fields(head)] == [
        "stream_id",
        "headers",
        "end_stream",
    ]
    data = DataReceived(data=b"x", stream_id=3)
    assert data == DataReceived(3, b"x", False)
    assert dataclasses.replace(data, data=b"y") == DataReceived(3, b"y")
    assert dataclasses.astuple(data) == (3, b"x", False)
    with pytest.raises(TypeError):
        DataReceived(1)  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        head.end_stream = True  # type: ignore[misc]
