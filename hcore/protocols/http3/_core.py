"""State and inbound machinery of the HTTP/3 protocol, shared by both roles.

Theory of operation
-------------------

Two aioquic objects do the work: a QUIC connection (a
:class:`~hcore.protocols.http3._quic.FlowControlledQuicConnection`) and an
``H3Connection`` on top of it.  :class:`ProtocolCore` drives them and
translates; :class:`~hcore.protocols.http3._protocol.AioquicProtocol` adds the
public methods.

After every input (a datagram, a timer) the core

1. drains aioquic's QUIC events, hands each to ``H3Connection`` (and, for
   the peer's unidirectional streams, to the GOAWAY reader) and turns what
   comes out into hcore events (:meth:`ProtocolCore._pump`);
2. hands held body bytes to aioquic as far as the peer's windows and the
   send buffer allow (:meth:`ProtocolCore._flush`), emitting
   ``SendBufferDrained`` when a stream's held bytes are gone;
3. closes the QUIC connection if this side sent GOAWAY, every stream is
   done and everything sent was acknowledged (:meth:`ProtocolCore._maybe_close`).

Resets follow HTTP/2's meaning where HTTP/3 allows: a reset (RESET_STREAM,
or STOP_SENDING with an error) from the peer ends the exchange both ways and
is reported once as ``StreamResetReceived``.  RFC 9114 §4.1 gives
``H3_NO_ERROR`` a gentler meaning: STOP_SENDING with it stops only our body
(what is held is dropped, ``SendBufferDrained`` wakes the writer), and a
RESET_STREAM with it cuts only the peer's body, leaving our response to
finish.  Streams this side reset while the peer may still be sending are
kept in a "discarding" set, so late frames on them are dropped rather than
mistaken for a new request.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import deque

from aioquic.h3 import events as h3_events
from aioquic.h3.connection import ErrorCode, H3Connection
from aioquic.quic import events as quic_events

from hcore._errors import LocalProtocolError
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    InformationalResponseReceived,
    SendBufferDrained,
    StreamResetReceived,
    StreamResetSent,
    TrailersReceived,
)
from hcore.protocols.http3._content import ContentAwareH3Connection
from hcore.protocols.http3._control import ControlStreamError, ControlStreamReader
from hcore.protocols.http3._limits import Limits
from hcore.protocols.http3._quic import (
    FlowControlledQuicConnection,
    forget_h3_sending,
    h3_buffered,
    send_room,
    streams_settled,
)
from hcore.protocols.http3._streams import (
    ReceiveState,
    SendState,
    Stream,
    from_quic_id,
    is_informational,
)

__all__ = ("ProtocolCore",)

_MAX_ERROR_CODE = (1 << 62) - 1


class ProtocolCore:
    """The state of one HTTP/3 connection and what happens on input."""

    _is_client: bool

    def __init__(self, *, limits: Limits) -> None:
        self._limits = limits
        self._quic: FlowControlledQuicConnection | None = None
        self._h3: H3Connection | None = None
        self._control_stream_id = 0
        self._now: float | None = None
        self._events: deque[Event] = deque()
        # Exchanges by QUIC stream id; those with body bytes held, in order.
        self._streams: dict[int, Stream] = {}
        self._sending: dict[int, None] = {}
        # Streams reset by this side whose peer may still be sending.
        self._discarding: set[int] = set()
        self._control = ControlStreamReader()
        self._connection_ids: dict[bytes, None] = {}
        self._terminated = False
        self._closing = False
        self._goaway_sent: int | None = None
        self._goaway_received: int | None = None
        self._handshake_complete = False
        self._session_resumed = False
        self._early_data_accepted = False

    # -- role hooks (client and server) -------------------------------------------

    @abstractmethod
    def _open_stream(
        self, quic_id: int, block: list[tuple[bytes, bytes]], end_stream: bool
    ) -> None:
        """Open a stream with a request header block (clients only)."""
        raise NotImplementedError

    @abstractmethod
    def _goaway_identifier(self) -> int:
        """What this side's GOAWAY carries (RFC 9114 §5.2)."""
        raise NotImplementedError

    @abstractmethod
    def _on_request(self, quic_id: int, ended: bool) -> Stream | None:
        """A header block came on a stream unknown so far (a request, on servers).

        :param ended: whether the block ended the stream.
        """
        raise NotImplementedError

    @abstractmethod
    def _on_goaway(self, identifier: int) -> None:
        """The peer sent GOAWAY."""
        raise NotImplementedError

    def _on_handshake(self, event: quic_events.HandshakeCompleted) -> None:
        self._handshake_complete = True
        self._session_resumed = event.session_resumed
        self._early_data_accepted = event.early_data_accepted

    # -- shared machinery ------------------------------------------------------

    def _require_now(self) -> float:
        if self._now is None:
            raise LocalProtocolError("call clock() before feeding datagrams")
        return self._now

    def _new_h3(self, quic: FlowControlledQuicConnection) -> H3Connection:
        """Make the HTTP/3 layer, with our QPACK and field section bounds.

        It also knows which messages have no content whatever their
        ``content-length`` says (:mod:`~hcore.protocols.http3._content`).
        """
        limits = self._limits
        return ContentAwareH3Connection(
            quic,
            max_table_capacity=limits.qpack_max_table_capacity,
            blocked_streams=limits.qpack_blocked_streams,
            max_field_section_size=limits.max_field_section_size,
        )

    def _usable(self) -> H3Connection:
        if self._terminated or self._closing:
            raise LocalProtocolError("the connection is closed")
        if self._h3 is None:
            raise LocalProtocolError(
                "the connection has not started (clients: call clock() first)"
            )
        return self._h3

    @staticmethod
    def _code(error_code: int) -> int:
        if not isinstance(error_code, int) or not 0 <= error_code <= _MAX_ERROR_CODE:
            raise LocalProtocolError(f"invalid error code {error_code!r}")
        # 0 is "no error" on every version; HTTP/3 spells it 0x100.
        return error_code or ErrorCode.H3_NO_ERROR

    def _held_bytes(self, quic_id: int) -> int:
        # What the application has not taken yet, plus what H3Connection
        # keeps before it can make an event of it.
        stream = self._streams.get(quic_id)
        held = stream.received_held if stream is not None else 0
        return held + h3_buffered(self._h3, quic_id)

    def _emit(self, event: Event) -> None:
        if not self._terminated:
            self._events.append(event)

    def _terminate(self, event: ConnectionTerminated) -> None:
        if not self._terminated:
            self._events.append(event)
            self._terminated = True
            self._sending.clear()

    def _fail(self, exc: Exception) -> None:
        # aioquic should not raise here; if it does, its state cannot be
        # trusted, so the connection ends.
        self._terminate(
            ConnectionTerminated(
                ErrorCode.H3_INTERNAL_ERROR, f"aioquic failed: {exc!r}"
            )
        )

    def _close_quic(
        self, code: int, reason: str, frame_type: int | None = None
    ) -> None:
        """Close the QUIC connection.

        Without ``frame_type`` the code is an HTTP/3 one (an application
        close); with it, a transport one (RFC 9000 §19.19).
        """
        if self._quic is not None and not self._closing:
            self._closing = True
            self._sending.clear()
            self._quic.close(
                error_code=code, frame_type=frame_type, reason_phrase=reason
            )

    def _after_input(self) -> None:
        self._pump()
        if not (self._terminated or self._closing):
            for quic_id in list(self._sending):
                self._flush(self._streams[quic_id])
            self._maybe_close()

    def _maybe_close(self) -> None:
        quic = self._quic
        if (
            quic is None
            or self._closing
            or self._terminated
            or self._goaway_sent is None
            or self._streams
            or not streams_settled(quic, self._control_stream_id)
        ):
            return
        self._close_quic(ErrorCode.H3_NO_ERROR, "")

    def _flush(self, stream: Stream) -> None:
        """Hand held bytes of a stream to aioquic as far as the peer allows."""
        quic, h3 = self._quic, self._h3
        assert quic is not None and h3 is not None
        quic_id = stream.quic_id
        while stream.held:
            room = send_room(quic, quic_id, self._limits.stream_send_buffer)
            if room <= 0:
                self._sending[quic_id] = None
                return
            chunk, last = stream.take(room)
            end = last and stream.end_held and stream.trailers_held is None
            h3.send_data(quic_id, chunk, end_stream=end)
            if end:
                stream.end_held = False
        if stream.trailers_held is not None:
            h3.send_headers(quic_id, stream.trailers_held, end_stream=True)
            stream.trailers_held = None
            stream.end_held = False
        elif stream.end_held:
            h3.send_data(quic_id, b"", end_stream=True)
            stream.end_held = False
        self._sending.pop(quic_id, None)
        if stream.drain_owed:
            stream.drain_owed = False
            self._emit(SendBufferDrained(stream.stream_id))
        self._forget_if_finished(stream)

    def _forget_if_finished(self, stream: Stream) -> None:
        if stream.finished and self._streams.get(stream.quic_id) is stream:
            del self._streams[stream.quic_id]
            self._sending.pop(stream.quic_id, None)
            self._maybe_close()

    def _abandon(
        self, quic_id: int, code: int, *, sending: bool = True, receiving: bool
    ) -> None:
        """Reset this side's sending and, if asked, stop the peer's."""
        quic, h3 = self._quic, self._h3
        assert quic is not None and h3 is not None
        if sending:
            quic.reset_stream(quic_id, code)
            forget_h3_sending(h3, quic_id)
        if receiving:
            try:
                quic.stop_stream(quic_id, code)
            except ValueError:
                # aioquic already discarded the stream: nothing comes any more.
                return
            self._discarding.add(quic_id)

    def _is_peer_unidirectional(self, quic_id: int) -> bool:
        # RFC 9000 §2.1: the low two bits are the initiator and direction.
        return quic_id % 4 == (3 if self._is_client else 2)

    def _pump(self) -> None:
        quic, h3 = self._quic, self._h3
        assert quic is not None and h3 is not None
        while not self._terminated:
            event = quic.next_event()
            if event is None:
                return
            if self._closing and not isinstance(
                event, quic_events.ConnectionTerminated
            ):
                # This side decided to close: what else arrived is moot.
                continue
            if isinstance(
                event, quic_events.StreamDataReceived
            ) and self._is_peer_unidirectional(event.stream_id):
                self._read_control(event)
            try:
                mapped = h3.handle_event(event)
            except Exception as exc:
                self._fail(exc)
                return
            for h3_event in mapped:
                self._on_h3_event(h3_event)
            self._on_quic_event(event)

    def _read_control(self, event: quic_events.StreamDataReceived) -> None:
        try:
            found = self._control.feed(event.stream_id, event.data, event.end_stream)
        except ControlStreamError as exc:
            self._close_quic(exc.error_code, exc.reason)
            return
        for identifier in found:
            if not self._closing:
                self._on_goaway(identifier)

    def _on_quic_event(self, event: quic_events.QuicEvent) -> None:
        if isinstance(event, quic_events.StreamReset):
            self._on_peer_reset(event.stream_id, event.error_code)
        elif isinstance(event, quic_events.StopSendingReceived):
            self._on_stop_sending(event.stream_id, event.error_code)
        elif isinstance(event, quic_events.HandshakeCompleted):
            self._on_handshake(event)
        elif isinstance(event, quic_events.ConnectionIdIssued):
            self._connection_ids[event.connection_id] = None
        elif isinstance(event, quic_events.ConnectionIdRetired):
            self._connection_ids.pop(event.connection_id, None)
        elif isinstance(event, quic_events.ConnectionTerminated):
            self._terminate(
                ConnectionTerminated(event.error_code, event.reason_phrase or None)
            )

    def _on_h3_event(self, event: h3_events.H3Event) -> None:
        # Server push is never asked for, so pushed streams are ignored.
        if isinstance(event, h3_events.HeadersReceived) and event.push_id is None:
            self._on_headers(event.stream_id, tuple(event.headers), event.stream_ended)
        elif isinstance(event, h3_events.DataReceived) and event.push_id is None:
            self._on_data(event.stream_id, event.data, event.stream_ended)

    def _on_headers(
        self, quic_id: int, block: tuple[tuple[bytes, bytes], ...], ended: bool
    ) -> None:
        if quic_id in self._discarding:
            if ended:
                self._discarding.discard(quic_id)
            return
        stream = self._streams.get(quic_id)
        if stream is None:
            stream = self._on_request(quic_id, ended)
            if stream is None:
                return
        if stream.receive is ReceiveState.HEADERS:
            if self._is_client and is_informational(block):
                self._emit(InformationalResponseReceived(stream.stream_id, block))
                return
            stream.receive = ReceiveState.ENDED if ended else ReceiveState.BODY
            self._emit(HeadersReceived(stream.stream_id, block, end_stream=ended))
        else:
            # A second block is trailers (aioquic checked it, RFC 9114 §4.1);
            # they end the stream even if the FIN comes later.
            stream.receive = ReceiveState.ENDED
            stream.trailers_received = True
            self._emit(TrailersReceived(stream.stream_id, block))
        self._forget_if_finished(stream)

    def _on_data(self, quic_id: int, data: bytes, ended: bool) -> None:
        if quic_id in self._discarding:
            if ended:
                self._discarding.discard(quic_id)
            return
        stream = self._streams.get(quic_id)
        if stream is None or stream.receive is not ReceiveState.BODY:
            # Unknown, or the bare FIN after trailers.
            return
        if ended:
            stream.receive = ReceiveState.ENDED
        stream.received_held += len(data)
        self._emit(DataReceived(stream.stream_id, data, end_stream=ended))
        self._forget_if_finished(stream)

    def _on_peer_reset(self, quic_id: int, code: int) -> None:
        if self._is_peer_unidirectional(quic_id):
            self._control.forget(quic_id)
            return
        if quic_id in self._discarding:
            self._discarding.discard(quic_id)
            return
        stream = self._streams.get(quic_id)
        if stream is None:
            return
        if code == ErrorCode.H3_NO_ERROR:
            # RFC 9114 §4.1: how a client answers a server's STOP_SENDING
            # after a complete response.  Only the peer's half was cut; ours,
            # the response, still stands.
            stream.receive = ReceiveState.ENDED
            self._emit(StreamResetReceived(stream.stream_id, code))
            self._forget_if_finished(stream)
            return
        del self._streams[quic_id]
        self._sending.pop(quic_id, None)
        if stream.send in (SendState.IDLE, SendState.OPEN) or stream.has_held:
            # The peer abandoned the exchange, so our half is not wanted either.
            self._abandon(quic_id, ErrorCode.H3_REQUEST_CANCELLED, receiving=False)
        self._emit(StreamResetReceived(stream.stream_id, code))
        self._maybe_close()

    def _on_stop_sending(self, quic_id: int, code: int) -> None:
        # aioquic has already reset our sending side with the same code, and
        # H3Connection has noted it.
        stream = self._streams.get(quic_id)
        if stream is None:
            return
        self._sending.pop(quic_id, None)
        if code == ErrorCode.H3_NO_ERROR:
            # RFC 9114 §4.1: a server may stop the request body it does not
            # need once its response is complete; the response still stands.
            owed = stream.drain_owed
            stream.drop_held()
            stream.send = SendState.STOPPED
            if owed:
                self._emit(SendBufferDrained(stream.stream_id))
            self._forget_if_finished(stream)
            return
        del self._streams[quic_id]
        if stream.receive is not ReceiveState.ENDED:
            self._abandon(
                quic_id, ErrorCode.H3_REQUEST_CANCELLED, sending=False, receiving=True
            )
        self._emit(StreamResetReceived(stream.stream_id, code))
        self._maybe_close()

    def _emit_goaway(self, last_stream_id: int, unprocessed: list[int]) -> None:
        self._emit(
            GoawayReceived(
                last_stream_id,
                ErrorCode.H3_NO_ERROR,
                tuple(from_quic_id(quic_id) for quic_id in unprocessed),
            )
        )
        for quic_id in unprocessed:
            stream = self._streams.pop(quic_id)
            self._sending.pop(quic_id, None)
            code = ErrorCode.H3_REQUEST_CANCELLED
            self._abandon(
                quic_id, code, receiving=stream.receive is not ReceiveState.ENDED
            )
            self._emit(StreamResetSent(stream.stream_id, code))
