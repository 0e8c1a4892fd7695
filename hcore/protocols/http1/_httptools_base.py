"""The half of the httptools (llhttp) HTTP/1.1 server that does not touch llhttp.

The queue between parsing and delivery, the pipelining bound, the tunnel
hand-over and the end of the connection; the body writer and what the
client shares are in :mod:`hcore.protocols.http1._httptools_common`.  See
the theory of operation in :mod:`hcore.protocols.http1._httptools_server`,
whose class adds the parser callbacks, the request checks and the response
heads.
"""

from __future__ import annotations

import enum
from abc import abstractmethod
from collections import deque
from typing import TypeAlias, cast

from hcore.events import DataReceived, TrailersReceived
from hcore.protocols.http1._headers import Framing
from hcore.protocols.http1._httptools_common import ToolsConnection

__all__ = (
    "HEAD_OVERHEAD",
    "Halt",
    "Item",
    "ItemKind",
    "ToolsProtocol",
)

#: Bytes of a request head besides its method, target and fields: two
#: spaces, ``HTTP/1.1``, the CRLF ending the line and the one ending the head.
HEAD_OVERHEAD = 14


class Halt(Exception):
    """Raised in a parser callback to stop llhttp; what to say is queued."""


class ItemKind(enum.Enum):
    """What a queued piece of the peer's input is."""

    #: A request head: (block, method, upgrade, version, keep-alive).
    HEAD = 0
    #: A piece of body.
    DATA = 1
    #: The end of a message, with its trailers or ``None``.
    END = 2
    #: Bad input: (status code, message).
    FAIL = 3
    #: Raw bytes after a CONNECT or Upgrade request (a bytearray, growing).
    SWITCH = 4
    #: The peer closed its side.
    EOF = 5


Item: TypeAlias = tuple[ItemKind, object]


class ToolsProtocol(ToolsConnection):
    """The server end of HTTP/1.1 over one TCP (or TLS) connection, short of llhttp.

    HTTP/1.1 has no flow control: :meth:`pending_data_size` is always ``0``
    and :class:`~hcore.events.SendBufferDrained` is never emitted.

    :param max_header_size: largest message head accepted, in bytes.
    :param max_header_count: most fields accepted in a head or trailers.
    :param max_pipelined_size: most bytes held that the peer sent ahead of
        the current exchange.
    """

    __slots__ = (
        "_ahead_sizes",
        "_backlog",
        "_end_deferred",
        "_exchanges",
        "_fields",
        "_halted",
        "_head_size",
        "_held",
        "_in_head",
        "_in_message",
        "_keep_alive",
        "_max_header_count",
        "_max_header_size",
        "_max_pipelined_size",
        "_msg_size",
        "_parsed",
        "_parsed_keep_alive",
        "_peer_version",
        "_request_ended",
        "_request_method",
        "_request_seen",
        "_request_upgrade",
        "_response_close",
        "_response_done",
        "_response_started",
        "_switch_raw",
    )

    def __init__(
        self, *, max_header_size: int, max_header_count: int, max_pipelined_size: int
    ) -> None:
        super().__init__(
            max_header_size=max_header_size, max_header_count=max_header_count
        )
        self._max_header_size = max_header_size
        self._max_header_count = max_header_count
        self._max_pipelined_size = max_pipelined_size
        # Parser side: requests completed, the message being parsed (its
        # fields, head and wire size), and what waits for its exchange.
        self._parsed = 0
        self._halted = False
        self._in_message = False
        self._in_head = False
        self._fields: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._msg_size = 0
        self._parsed_keep_alive = True
        # Both queues exist only while the peer is ahead (most connections
        # never are): an idle connection holds no deque.
        self._backlog: deque[Item] | None = None
        self._held = 0
        self._ahead_sizes: deque[int] | None = None
        self._switch_raw: bytearray | None = None
        # Delivery side: exchanges over, and how the connection ends.
        self._exchanges = 0
        self._input_stopped = False
        self._new_exchange()

    def _new_exchange(self) -> None:
        self._request_seen = False
        self._request_ended = False
        self._request_method = b""
        self._request_upgrade = False
        self._peer_version = b"1.1"
        self._keep_alive = True
        self._end_deferred = False
        self._sending = None
        self._response_started = False
        self._response_done = False
        self._response_close = False

    # -- HTTPProtocol: submitting --------------------------------------------

    # -- OverTCPProtocol -------------------------------------------------------

    def bytes_received(self, data: bytes) -> None:
        """Feed bytes from the peer; bad input becomes events, never raises."""
        if not data or self._eof or self._closed:
            return
        if self._tunnel:
            self._emit(DataReceived(self._stream_id, bytes(data)))
            return
        if self._input_stopped:
            return
        raw = self._switch_raw
        if raw is not None:
            raw += data
            self._count_size(len(data))
        elif self._halted:
            if self._parsed != self._exchanges or self._backlog:
                self._count_size(len(data))
        else:
            self._feed(data)
        self._deliver()
        if not self._backlog:
            # Not inside _deliver here, so no loop holds the empty deque.
            self._backlog = None

    def eof_received(self) -> None:
        """Tell the protocol the peer will send no more bytes."""
        if self._eof or self._closed:
            return
        self._eof = True
        self._queue((ItemKind.EOF, None))
        self._deliver()

    # -- role-specific parts ---------------------------------------------------

    @abstractmethod
    def _feed(self, data: bytes) -> None:
        """Run the parser on bytes from the peer."""

    @abstractmethod
    def _new_parser(self) -> None:
        """Replace the parser (after a refused switch)."""

    @abstractmethod
    def _start_request(self, value: object) -> None:
        """A head item's turn came: emit it."""

    @abstractmethod
    def _receive_failed(self, code: int, message: str) -> None:
        """Handle bad input from the peer; must end in :meth:`_terminate`."""

    @abstractmethod
    def _message_ended(self) -> None:
        """The peer's message ended without trailers."""

    def _exchange_open(self) -> bool:
        return self._tunnel or self._request_seen

    def _mid_exchange(self) -> bool:
        return self._request_seen or self._in_message or bool(self._backlog)

    # -- machinery -------------------------------------------------------------

    def _count_size(self, size: int) -> None:
        """Count bytes of the message being parsed; bound those sent ahead."""
        self._msg_size += size
        if self._parsed != self._exchanges:
            self._count_ahead(size)

    def _count_ahead(self, size: int) -> None:
        """Count bytes the peer sent ahead of the current exchange; bound them."""
        self._held += size
        if self._held > self._max_pipelined_size and not self._input_stopped:
            self._halted = True
            self._stop_reading(self._max_pipelined_size)

    def _put(self, item: Item) -> None:
        """Take an item from the parser: handle it now, or queue it."""
        if self._parsed == self._exchanges and not self._backlog:
            self._handle(item)
        elif not self._input_stopped:
            self._queue(item)

    def _queue(self, item: Item) -> None:
        """Queue an item behind the exchanges before it."""
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        backlog.append(item)

    def _queue_ahead(self, size: int) -> None:
        """Note the wire size of a message queued ahead of its exchange."""
        sizes = self._ahead_sizes
        if sizes is None:
            sizes = self._ahead_sizes = deque()
        sizes.append(size)

    def _deliver(self) -> None:
        """Hand out queued items whose exchange has come."""
        backlog = self._backlog
        while backlog and not self._closed:
            kind, value = backlog[0]
            if self._tunnel:
                backlog.popleft()
                if kind is ItemKind.SWITCH:
                    self._switch_raw = None
                    raw = bytes(cast(bytearray, value))
                    if raw:
                        self._emit(DataReceived(self._stream_id, raw))
                elif kind is ItemKind.EOF:
                    self._tunnel_remote_ended = True
                    self._emit(DataReceived(self._stream_id, b"", end_stream=True))
                    self._tunnel_check_done()
                continue
            if self._request_ended:
                if kind is not ItemKind.EOF:
                    return
                self._peer_closed = True
                backlog.popleft()
                self._after_step()
                continue
            backlog.popleft()
            if kind is ItemKind.SWITCH:
                # The switch was refused: what followed is the next request.
                rest = list(backlog)
                backlog.clear()
                self._switch_raw = None
                self._held = 0
                self._halted = False
                self._new_parser()
                raw = bytes(cast(bytearray, value))
                if raw:
                    self._feed(raw)
                backlog.extend(rest)
            else:
                self._handle((kind, value))

    def _handle(self, item: Item) -> None:
        kind, value = item
        if kind is ItemKind.HEAD:
            self._start_request(value)
        elif kind is ItemKind.DATA:
            self._emit(DataReceived(self._stream_id, cast(bytes, value)))
        elif kind is ItemKind.END:
            self._request_ended = True
            if value is not None:
                trailers = cast(tuple[tuple[bytes, bytes], ...], value)
                self._emit(TrailersReceived(self._stream_id, trailers))
            else:
                self._message_ended()
            self._after_step()
        elif kind is ItemKind.FAIL:
            code, message = cast(tuple[int, str], value)
            self._receive_failed(code, message)
        elif kind is ItemKind.EOF:
            self._peer_closed = True
            if self._request_seen or self._in_message:
                self._receive_failed(
                    400, "connection closed by the peer mid-message (incomplete)"
                )
            else:
                self._terminate(0, "connection closed by the peer")

    def _message_sent(self) -> None:
        self._response_done = True
        self._after_step()

    def _after_step(self) -> None:
        """End the exchange if the response is complete."""
        if not self._response_done or self._closed:
            return
        body = self._sending
        reusable = (
            self._keep_alive
            and not self._closing
            and not self._response_close
            and not (body is not None and body.framing is Framing.CLOSE)
        )
        if reusable and self._request_ended and not self._peer_closed:
            self._stream_id += 2
            self._exchanges += 1
            sizes = self._ahead_sizes
            if sizes:
                self._held -= sizes.popleft()
                if not sizes:
                    self._ahead_sizes = None
            else:
                self._held = 0
            self._new_exchange()
            self._deliver()
        elif self._request_ended or not reusable:
            self._end_after_exchange(self._peer_closed)

    def _terminate(self, code: int, message: str) -> None:
        if self._closed:
            return
        self._halted = True
        backlog = self._backlog
        if backlog is not None:
            # Emptied, not dropped: a _deliver loop may hold it.
            backlog.clear()
        super()._terminate(code, message)
