"""What the protocol remembers about one open stream, and its send buffer.

h2 keeps the RFC 9113 §5.1 stream state; this record keeps what h2 does not:
which header blocks the application has sent (so that data before headers,
or a second response, is refused before h2 sees it), the data waiting for
flow-control credit, and trailers or END_STREAM queued behind that data.

A record exists from the stream's first header block until both sides have
ended it or it is reset, exactly as long as h2 counts the stream as open,
so ``len()`` of the protocol's table is the number of open streams.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from hcore.protocols.http2._h2 import H2Connection

__all__ = ("DRAINED", "SENT", "STUCK", "Stream", "send_frame")

# What send_frame achieved.
STUCK = 0
SENT = 1
DRAINED = 2


# The empty queue every stream starts with, never appended to.
_NO_CHUNKS: deque[bytes] = deque(maxlen=0)


class Stream:
    """One open stream's application-side state and send buffer."""

    __slots__ = (
        "chunks",
        "end_submitted",
        "final_sent",
        "local_ended",
        "offset",
        "pending",
        "remote_ended",
        "seq",
        "stream_id",
        "trailers",
    )

    def __init__(self, stream_id: int, seq: int = -1) -> None:
        self.stream_id = stream_id
        #: The request (client) or final response (server) was submitted.
        self.final_sent = False
        #: The application ended its side; END_STREAM may still be queued.
        self.end_submitted = False
        #: END_STREAM was handed to h2.
        self.local_ended = False
        #: The peer ended its side.
        self.remote_ended = False
        #: Submitted bytes not yet handed to h2; ``offset`` is how much of
        #: the first chunk already went.
        self.chunks: deque[bytes] = _NO_CHUNKS
        self.offset = 0
        self.pending = 0
        #: Trailers to send once the buffer drains.
        self.trailers: Sequence[tuple[bytes, bytes]] | None = None
        #: Server: the rapid-reset guard's number for this stream while our
        #: response is incomplete, else -1.
        self.seq = seq

    def push(self, data: bytes) -> None:
        """Queue bytes behind those already waiting."""
        if self.chunks is _NO_CHUNKS:
            # Most streams never wait: their queue is made on first use.
            self.chunks = deque()
        self.chunks.append(data)
        self.pending += len(data)

    def take(self, room: int) -> bytes:
        """Remove up to ``room`` bytes (``room > 0``) from the front.

        Small chunks are joined so that one DATA frame carries as much as
        the window and frame size allow.
        """
        chunks = self.chunks
        chunk = chunks[0]
        start = self.offset
        available = len(chunk) - start
        if available > room:
            self.offset = start + room
            self.pending -= room
            return chunk[start : start + room]
        chunks.popleft()
        self.offset = 0
        piece = chunk[start:] if start else chunk
        if not chunks or available == room:
            self.pending -= available
            return piece
        pieces = [piece]
        taken = available
        while chunks and taken < room:
            chunk = chunks[0]
            if len(chunk) > room - taken:
                self.offset = room - taken
                pieces.append(chunk[: self.offset])
                taken = room
                break
            chunks.popleft()
            pieces.append(chunk)
            taken += len(chunk)
        self.pending -= taken
        return b"".join(pieces)


def send_frame(conn: H2Connection, stream: Stream) -> int:
    """Hand h2 one DATA frame of the stream's waiting bytes, if credit allows.

    The frame is as large as the stream's and the connection's windows and
    the peer's SETTINGS_MAX_FRAME_SIZE allow (RFC 9113 §4.2, §6.9).  With
    the last bytes go END_STREAM, or the trailers waiting behind them.

    :return: :data:`STUCK` (no credit), :data:`SENT` (bytes remain) or
        :data:`DRAINED` (the buffer is empty; if ``end_submitted``, the
        stream's END_STREAM went too).
    """
    stream_id = stream.stream_id
    room = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
    if room <= 0:
        return STUCK
    piece = stream.take(room)
    if stream.pending:
        conn.send_chunk(stream_id, piece)
        return SENT
    trailers = stream.trailers
    conn.send_chunk(stream_id, piece, stream.end_submitted and trailers is None)
    if trailers is not None:
        stream.trailers = None
        conn.send_block(stream_id, trailers, True)
    return DRAINED
