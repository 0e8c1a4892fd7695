"""Data of one stream that arrives frame after frame is taken as one event.

A read brings many DATA frames; ``next_event`` joins the data events of a
stream queued right behind each other (up to ``JOINED_MAX`` bytes), so
that the bytes, their order, ``end_stream`` and the flow-control credit
returned are what taking them one by one would give, with fewer events.
"""

from __future__ import annotations

from hyperframe.frame import WindowUpdateFrame

from hcore.events import DataReceived
from hcore.protocols.http2 import H2ServerProtocol
from hcore.protocols.http2._protocol import JOINED_MAX
from tests.hcore.http2_helpers import RawClient, parse_frames, request
from tests.hcore.pairs import drain


def _server() -> tuple[H2ServerProtocol, RawClient]:
    server = H2ServerProtocol()
    raw = RawClient(server)
    raw.start()
    return server, raw


def _windows(server: H2ServerProtocol, stream_id: int) -> tuple[object, ...]:
    """h2's receive windows (connection, stream), with the taken bytes returned.

    Each is the window plus the bytes taken and not yet sent back in a
    WINDOW_UPDATE: the window as it is once every taken byte is credited.
    When h2 sends its WINDOW_UPDATE frames depends on the amounts taken at
    a time; what is owed in the end does not.
    """
    conn = server._conn
    books = [conn._inbound_flow_control_window_manager]
    stream = conn.streams.get(stream_id)
    if stream is not None:
        books.append(stream._inbound_window_manager)
    return tuple(b.current_window_size + b._bytes_processed for b in books)


def _one_by_one(frames: list[bytes]) -> tuple[list[DataReceived], object, bytes]:
    """The events, windows and output of a server taking each frame alone."""
    server, raw = _server()
    raw.send(*raw.headers(1, request(b"/", b"POST"), end_stream=False))
    drain(server)
    events: list[DataReceived] = []
    for frame in frames:
        raw.send(frame)
        events.extend(drain(server))  # type: ignore[arg-type]
    return events, _windows(server, 1), server.bytes_to_send()


def _at_once(frames: list[bytes]) -> tuple[list[DataReceived], object, bytes]:
    """The same, with every frame in one read."""
    server, raw = _server()
    raw.send(*raw.headers(1, request(b"/", b"POST"), end_stream=False))
    drain(server)
    raw.send(b"".join(frames))
    events: list[DataReceived] = drain(server)  # type: ignore[assignment]
    return events, _windows(server, 1), server.bytes_to_send()


def test_frames_of_one_read_are_one_event_with_their_credit() -> None:
    pieces = [bytes([n]) * 8000 for n in range(6)]
    for last_ends in (False, True):
        frames = [
            RawClient.data(1, piece, end_stream=last_ends and n == 5).serialize()
            for n, piece in enumerate(pieces)
        ]
        events, windows, output = _at_once(frames)
        assert events == [DataReceived(1, b"".join(pieces), end_stream=last_ends)]
        # The same credit as taking them one by one, and WINDOW_UPDATE sent.
        alone, alone_windows, _ = _one_by_one(frames)
        assert len(alone) == 6
        assert windows == alone_windows
        if not last_ends:
            # Every byte taken is owed back to the stream.
            assert windows[1] == 65_535  # type: ignore[index]
        assert any(
            isinstance(frame, WindowUpdateFrame) for frame in parse_frames(output)
        )


def test_only_neighbouring_data_of_the_same_stream_is_joined() -> None:
    server, raw = _server()
    for stream_id in (1, 3):
        raw.send(*raw.headers(stream_id, request(b"/", b"POST"), end_stream=False))
    drain(server)
    frames = [
        raw.data(1, b"a"),
        raw.data(1, b"b"),
        raw.data(3, b"c"),
        raw.data(1, b"d"),
        raw.data(3, b"e", end_stream=True),
        raw.data(1, b"", end_stream=True),
    ]
    raw.send(b"".join(frame.serialize() for frame in frames))
    assert drain(server) == [
        DataReceived(1, b"ab"),
        DataReceived(3, b"c"),
        DataReceived(1, b"d"),
        DataReceived(3, b"e", end_stream=True),
        DataReceived(1, b"", end_stream=True),
    ]


def test_padding_is_credited_and_not_joined_into_the_data() -> None:
    frames = [
        RawClient.data(1, b"x" * 16000, pad=200).serialize(),
        RawClient.data(1, b"y" * 16000).serialize(),
        RawClient.data(1, b"z" * 16000, pad=1).serialize(),
    ]
    events, windows, _ = _at_once(frames)
    assert events == [DataReceived(1, b"x" * 16000 + b"y" * 16000 + b"z" * 16000)]
    assert windows == _one_by_one(frames)[1]


def test_a_joined_event_stops_near_its_bound() -> None:
    server, raw = _server()
    raw.send(*raw.headers(1, request(b"/", b"POST"), end_stream=False))
    drain(server)
    # Four windows' worth can't come at once: open the windows first.
    window = 4 * JOINED_MAX
    server.submit_headers(1, [(b":status", b"200")])
    server._conn.increment_flow_control_window(window)
    server._conn.increment_flow_control_window(window, stream_id=1)
    raw.read()
    frame_size = 16384
    frames = [raw.data(1, b"q" * frame_size) for _ in range(window // frame_size)]
    raw.send(b"".join(frame.serialize() for frame in frames))
    events = drain(server)
    sizes = [len(event.data) for event in events if isinstance(event, DataReceived)]
    assert sum(sizes) == window
    assert all(size <= JOINED_MAX for size in sizes)
    assert len(sizes) == window // JOINED_MAX
