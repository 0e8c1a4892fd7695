"""Helpers for the HTTP/2 tests: pairs, scripted raw peers and frame parsing.

The protocols under test talk to each other through :class:`TCPPair`.  To
send what a well-behaved protocol never sends (malformed headers, frames on
odd streams, floods), :class:`RawClient` builds frames by hand with
hyperframe and hpack, and :class:`RawServer` drives a bare h2 connection
with every check switched off.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import Event as H2Event
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
)

from hcore import Headers
from hcore.events import Event
from hcore.protocols import HTTPOverTCPProtocol
from hcore.protocols.http2 import H2ClientProtocol, H2ServerProtocol
from tests.hcore.pairs import Splitter, TCPPair, drain, whole

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def request(
    path: bytes = b"/", method: bytes = b"GET", *extra: tuple[bytes, bytes]
) -> list[tuple[bytes, bytes]]:
    """A request header block for ``http://example.test{path}``."""
    return [
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", b"example.test"),
        (b":path", path),
        *extra,
    ]


def h2_pair(
    split: Splitter = whole,
    client: H2ClientProtocol | None = None,
    server: H2ServerProtocol | None = None,
) -> TCPPair:
    """A client and a server protocol that have exchanged SETTINGS."""
    pair = TCPPair(client or H2ClientProtocol(), server or H2ServerProtocol(), split)
    pair.pump()
    assert drain(pair.client) == []
    assert drain(pair.server) == []
    return pair


def parse_frames(data: bytes) -> list[Frame]:
    """Parse whole frames (after an optional client preface)."""
    if data.startswith(PREFACE):
        data = data[len(PREFACE) :]
    frames: list[Frame] = []
    view = memoryview(data)
    while view:
        frame, length = Frame.parse_frame_header(view[:9])
        assert len(view) >= 9 + length, "truncated frame"
        frame.parse_body(view[9 : 9 + length])
        frames.append(frame)
        view = view[9 + length :]
    return frames


def goaways(data: bytes) -> list[tuple[int, int]]:
    """``(last_stream_id, error_code)`` of every GOAWAY in ``data``."""
    return [
        (f.last_stream_id, f.error_code)
        for f in parse_frames(data)
        if isinstance(f, GoAwayFrame)
    ]


def resets(frames: Iterable[Frame]) -> list[tuple[int, int]]:
    """``(stream_id, error_code)`` of every RST_STREAM."""
    return [
        (f.stream_id, f.error_code) for f in frames if isinstance(f, RstStreamFrame)
    ]


class RawClient:
    """A scripted HTTP/2 client that sends whatever frames the test builds."""

    def __init__(self, server: HTTPOverTCPProtocol) -> None:
        self.server = server
        self.encoder = Encoder()
        #: Every frame the server sent, in order.
        self.frames: list[Frame] = []

    def start(self, ack: bool = True) -> None:
        """Send the preface, take the server's SETTINGS and (maybe) ACK them."""
        self.send(PREFACE + SettingsFrame(0).serialize())
        self.read()
        if ack:
            self.send(SettingsFrame(0, flags=["ACK"]).serialize())
            self.read()

    def send(self, *chunks: bytes | Frame) -> None:
        """Feed bytes or frames to the server."""
        for chunk in chunks:
            data = chunk if isinstance(chunk, bytes) else chunk.serialize()
            self.server.bytes_received(data)

    def read(self) -> list[Frame]:
        """Parse and remember what the server sent since the last read."""
        frames = parse_frames(self.server.bytes_to_send())
        self.frames.extend(frames)
        return frames

    def headers(
        self,
        stream_id: int,
        headers: Sequence[tuple[bytes, bytes]],
        end_stream: bool = True,
        fragment: int | None = None,
    ) -> list[Frame]:
        """Encode a header block as HEADERS (+ CONTINUATION of ``fragment`` bytes)."""
        block = self.encoder.encode(list(headers))
        size = fragment or len(block) or 1
        pieces = [block[i : i + size] for i in range(0, len(block), size)] or [b""]
        flags = ["END_STREAM"] if end_stream else []
        frames: list[Frame] = [HeadersFrame(stream_id, pieces[0], flags=flags)]
        frames.extend(ContinuationFrame(stream_id, piece) for piece in pieces[1:])
        frames[-1].flags.add("END_HEADERS")
        return frames

    @staticmethod
    def data(
        stream_id: int, data: bytes, end_stream: bool = False, pad: int = 0
    ) -> Frame:
        """A DATA frame, optionally padded."""
        flags = ["END_STREAM"] if end_stream else []
        if pad:
            flags.append("PADDED")
        return DataFrame(stream_id, data, pad_length=pad, flags=flags)


class RawServer:
    """A bare h2 server with header validation off, linked to a client protocol."""

    def __init__(self, client: H2ClientProtocol) -> None:
        self.client = client
        self.conn = H2Connection(
            H2Configuration(
                client_side=False,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
            )
        )
        self.conn.initiate_connection()
        #: h2 events the raw server saw.
        self.events: list[H2Event] = []
        self.pump()

    def pump(self) -> None:
        """Move bytes both ways until both are quiet."""
        for _ in range(1000):
            to_server = self.client.bytes_to_send()
            to_client = self.conn.data_to_send()
            if not to_server and not to_client:
                return
            if to_server:
                self.events.extend(self.conn.receive_data(to_server))
            if to_client:
                self.client.bytes_received(to_client)
        raise AssertionError("raw link still busy")

    def respond(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        """Send a header block as-is, then move the bytes."""
        self.conn.send_headers(stream_id, list(headers), end_stream=end_stream)
        self.pump()


def events_of(events: Iterable[Event], stream_id: int) -> list[Event]:
    """The events that belong to one stream."""
    return [e for e in events if getattr(e, "stream_id", None) == stream_id]
