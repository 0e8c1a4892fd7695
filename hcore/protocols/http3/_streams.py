"""Per-stream state of an HTTP/3 exchange, stream ids, and header checks.

Theory of operation
-------------------

Every request/response exchange lives on one client-initiated bidirectional
QUIC stream (RFC 9114 §4.1).  hcore numbers exchanges 1, 3, 5, ... on every
HTTP version, so QUIC stream ``4n`` is shown as ``2n + 1``
(:func:`to_quic_id` and :func:`from_quic_id` convert).

A :class:`Stream` tracks the two directions separately.

Sending (:class:`SendState`)::

    IDLE --final headers--> OPEN --end_stream--> ENDED
     |  \\__1xx (server, stays IDLE)
     +----final headers with end_stream------> ENDED
    any --peer's STOP_SENDING(H3_NO_ERROR)---> STOPPED

``IDLE`` only exists on a server before its final response; a client's
stream starts ``OPEN`` (or ``ENDED``) with the request.  Body bytes and
trailers that the peer's flow-control window cannot take yet wait in
:attr:`Stream.held`, in order, with the end of the stream behind them.  In
``STOPPED`` the peer has said it will read nothing more: what is submitted is
dropped.

Receiving (:class:`ReceiveState`)::

    HEADERS --request / final response--> BODY --end of stream--> ENDED

A client may see interim (1xx) responses while in ``HEADERS``.  Trailers end
the stream even when the FIN comes later in a packet of its own.

A reset in either direction ends the exchange at once; the protocol then
forgets the stream.  Otherwise it forgets it when both directions ended.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from aioquic.h3.connection import (
    ProtocolError,
    validate_request_headers,
    validate_response_headers,
    validate_trailers,
)

from hcore._errors import LocalProtocolError
from hcore._types import Headers

__all__ = (
    "ReceiveState",
    "SendState",
    "Stream",
    "check_request",
    "check_response",
    "check_trailers",
    "from_quic_id",
    "header_list",
    "is_informational",
    "to_quic_id",
)


def to_quic_id(stream_id: int) -> int:
    """Turn an hcore stream id (1, 3, 5, ...) into its QUIC id (0, 4, 8, ...).

    :raises LocalProtocolError: if ``stream_id`` is not a positive odd number.
    """
    if not isinstance(stream_id, int) or stream_id < 1 or stream_id % 2 == 0:
        raise LocalProtocolError(f"invalid stream id {stream_id!r}")
    return (stream_id - 1) * 2


def from_quic_id(quic_id: int) -> int:
    """Turn a client-initiated bidirectional QUIC stream id into an hcore id."""
    return quic_id // 2 + 1


class SendState(Enum):
    """What this side may still send on a stream."""

    #: Nothing final sent yet (a server before its response).
    IDLE = "idle"
    #: Final headers sent; body and trailers may follow.
    OPEN = "open"
    #: The end of the stream was submitted (it may still wait in ``held``).
    ENDED = "ended"
    #: The peer asked us to stop sending; submissions are dropped.
    STOPPED = "stopped"


class ReceiveState(Enum):
    """What this side still expects from the peer on a stream."""

    #: The request (server) or final response (client) has not come yet.
    HEADERS = "headers"
    #: Body, trailers or the end of the stream may come.
    BODY = "body"
    #: The peer finished the stream.
    ENDED = "ended"


@dataclass(eq=False)
class Stream:
    """One exchange, as the protocol tracks it."""

    #: The QUIC stream id.
    quic_id: int
    #: The sending direction.
    send: SendState
    #: The receiving direction.
    receive: ReceiveState
    #: Body pieces waiting for the peer's window, oldest first.
    held: deque[bytes] = field(default_factory=deque)
    #: Bytes in :attr:`held`.
    held_size: int = 0
    #: The end of the stream waits behind :attr:`held`.
    end_held: bool = False
    #: Trailers waiting behind :attr:`held`; they end the stream.
    trailers_held: list[tuple[bytes, bytes]] | None = None
    #: A submit returned with data held, so SendBufferDrained is owed.
    drain_owed: bool = False
    #: Received body bytes in events the application has not taken.
    received_held: int = 0
    #: Trailers arrived, so a later bare end of stream is no news.
    trailers_received: bool = False

    @property
    def stream_id(self) -> int:
        """The hcore stream id."""
        return from_quic_id(self.quic_id)

    @property
    def has_held(self) -> bool:
        """Whether anything waits to be handed to the QUIC layer."""
        return bool(self.held) or self.end_held or self.trailers_held is not None

    @property
    def finished(self) -> bool:
        """Whether both directions ended and nothing waits to be sent."""
        return (
            self.send in (SendState.ENDED, SendState.STOPPED)
            and not self.has_held
            and self.receive is ReceiveState.ENDED
        )

    def hold(self, data: bytes) -> None:
        """Queue body bytes behind what already waits."""
        if data:
            self.held.append(data)
            self.held_size += len(data)

    def drop_held(self) -> None:
        """Forget everything that waits to be sent."""
        self.held.clear()
        self.held_size = 0
        self.end_held = False
        self.trailers_held = None
        self.drain_owed = False

    def take(self, room: int) -> tuple[bytes, bool]:
        """Take up to ``room`` held bytes from the front.

        :return: the bytes, and whether they are the last body bytes held.
        """
        chunk = self.held[0]
        if len(chunk) > room:
            self.held[0] = chunk[room:]
            chunk = chunk[:room]
        else:
            self.held.popleft()
        self.held_size -= len(chunk)
        return chunk, not self.held


# aioquic's QPACK encoder (pylsqpack) takes names and values shorter than this.
_MAX_FIELD_PART = 0xFFFF


def header_list(headers: Headers) -> list[tuple[bytes, bytes]]:
    """Copy a header block into the list form aioquic takes, checking types.

    :raises LocalProtocolError: if an entry is not a pair of ``bytes``, or a
        name or value is too long for the QPACK encoder (64 KiB).
    """
    block: list[tuple[bytes, bytes]] = []
    for entry in headers:
        if (
            not isinstance(entry, tuple)
            or len(entry) != 2
            or not isinstance(entry[0], bytes)
            or not isinstance(entry[1], bytes)
        ):
            raise LocalProtocolError(f"header {entry!r} is not a (bytes, bytes) pair")
        if len(entry[0]) >= _MAX_FIELD_PART or len(entry[1]) >= _MAX_FIELD_PART:
            raise LocalProtocolError(
                f"header {entry[0][:40]!r} is too long to encode (64 KiB at most)"
            )
        block.append(entry)
    return block


def is_informational(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether a response header block is an interim 1xx response (RFC 9114 §4.1).

    :param headers: a block that has a ``:status`` (it was checked).
    """
    return dict(headers)[b":status"].startswith(b"1")


# The checks below are the ones aioquic applies to what it receives (RFC 9114
# §4.2 and §4.3), run on what we send so that a malformed block is refused
# here instead of making the peer close the connection.


def check_request(headers: list[tuple[bytes, bytes]]) -> None:
    """Check a request header block before sending it.

    :raises LocalProtocolError: if the peer would find it malformed.
    """
    try:
        validate_request_headers(headers)
    except ProtocolError as exc:
        raise LocalProtocolError(
            f"malformed request headers: {exc.reason_phrase}"
        ) from exc


def check_response(headers: list[tuple[bytes, bytes]]) -> None:
    """Check a response (final or 1xx) header block before sending it.

    :raises LocalProtocolError: if the peer would find it malformed.
    """
    try:
        validate_response_headers(headers)
    except ProtocolError as exc:
        raise LocalProtocolError(
            f"malformed response headers: {exc.reason_phrase}"
        ) from exc


def check_trailers(headers: list[tuple[bytes, bytes]]) -> None:
    """Check a trailer block before sending it.

    :raises LocalProtocolError: if the peer would find it malformed.
    """
    try:
        validate_trailers(headers)
    except ProtocolError as exc:
        raise LocalProtocolError(f"malformed trailers: {exc.reason_phrase}") from exc
