"""The aioquic connection hcore drives, and every aioquic internal it touches.

aioquic's public API (``QuicConnection``, ``H3Connection`` and their events)
carries the whole QUIC and HTTP/3 exchange, but a few things hcore needs are
out of its reach in aioquic 1.7 (the project pins ``aioquic>=1.7.2,<1.8``):

- *Receive flow control.*  aioquic doubles a stream's receive window each
  time the peer has used half of it, whether or not anybody read the data,
  so an application that stops taking events would not stop the sender.
  :class:`FlowControlledQuicConnection` replaces that policy for streams
  (RFC 9000 §4.2 leaves it to the receiver): the credit it advertises is what
  the application has *taken* plus a fixed window.  The connection-wide
  MAX_DATA keeps aioquic's policy; the per-stream credit and aioquic's limit
  on concurrent peer streams bound what can pile up.
- *Send buffering.*  ``QuicConnection.send_stream_data`` buffers without
  limit; :func:`send_room` reads the stream's send buffer and the peer's
  window so the protocol only hands over what the peer can take.
- *The peer's stream limit* (MAX_STREAMS, RFC 9000 §4.6) for
  ``is_available()``: :func:`peer_bidi_stream_limit`.
- *Client certificates.*  aioquic's server asks for one only through a flag
  its tests set, and never checks it against a CA: the connection class sets
  the flag and :func:`peer_certificate` hands the certificate over for
  checking.
- *H3Connection's stream records.*  When hcore resets the sending side of a
  stream, :func:`forget_h3_sending` tells H3Connection, as it does itself on
  STOP_SENDING, so that the record is dropped once the receiving side ends;
  :func:`h3_buffered` tells how much it keeps unparsed, which counts as not
  taken for flow control.
- *A client starting over* after a Retry (or Version Negotiation): aioquic
  makes new packet spaces and forgets the packets sent in the old ones, so
  the 0-RTT data they carried (a resumed client's first requests) would
  never be sent again and their bytes would stay counted in flight.
  :class:`FlowControlledQuicConnection` declares them lost instead (RFC 9000
  §17.2.5.3: the client may send that data again, in new packets).
- *Streams still in flight*, so that a graceful close waits for data (and
  the GOAWAY) to be acknowledged: :func:`streams_settled`; and the requests
  a client began but never finished, which a server's graceful close
  refuses rather than waits for: :func:`unanswered_requests`.

Every private (underscore) name of aioquic that hcore uses is used here and
nowhere else.  Elsewhere hcore uses aioquic's documented API, plus module-level
helpers of ``aioquic.h3.connection`` (header checks, frame encoding) and the
certificate fields of ``QuicConfiguration``, which aioquic calls internal.
"""

from __future__ import annotations

from collections.abc import Callable

from aioquic.h3.connection import H3Connection
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import (
    MAX_STREAM_DATA_FRAME_CAPACITY,
    QuicConnection,
    stream_is_client_initiated,
    stream_is_unidirectional,
)
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.packet_builder import QuicDeliveryState, QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream
from aioquic.tls import SessionTicketFetcher, SessionTicketHandler
from cryptography import x509

__all__ = (
    "DATA_FRAME_OVERHEAD",
    "FlowControlledQuicConnection",
    "forget_h3_sending",
    "h3_buffered",
    "peer_bidi_stream_limit",
    "peer_certificate",
    "send_room",
    "streams_settled",
    "unanswered_requests",
)

#: The most an HTTP/3 DATA frame header takes: a one-byte type and an up to
#: eight-byte length (RFC 9114 §7.1, RFC 9000 §16).
DATA_FRAME_OVERHEAD = 9


class FlowControlledQuicConnection(QuicConnection):
    """A ``QuicConnection`` whose stream credit follows what the application took.

    :param configuration: the QUIC configuration.
    :param receive_window: how many bytes a stream may have received beyond
        what the application has taken; the initial window too.
    :param held_bytes: tells, for a stream id, how many of its received bytes
        wait in events the application has not taken.
    :param request_client_certificate: (server) ask the client for a
        certificate during the handshake.
    :param original_destination_connection_id: (server) the destination
        connection id of the client's first Initial.
    :param session_ticket_fetcher: (server) finds a ticket for resumption.
    :param session_ticket_handler: receives new session tickets.
    """

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        receive_window: int,
        held_bytes: Callable[[int], int],
        request_client_certificate: bool = False,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
        session_ticket_fetcher: SessionTicketFetcher | None = None,
        session_ticket_handler: SessionTicketHandler | None = None,
    ) -> None:
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
            retry_source_connection_id=retry_source_connection_id,
            session_ticket_fetcher=session_ticket_fetcher,
            session_ticket_handler=session_ticket_handler,
        )
        self._hcore_receive_window = receive_window
        self._hcore_held_bytes = held_bytes
        self._hcore_request_client_certificate = request_client_certificate

    def _initialize(self, peer_cid: bytes) -> None:
        # A client calls this again when it starts over after a Retry or a
        # Version Negotiation; the packets it sent so far belong to spaces
        # that are about to be replaced.
        old_spaces = list(self._spaces.values())
        # The TLS context is created here; a server's is fed the ClientHello
        # right after, so this is the one moment to ask for a certificate.
        super()._initialize(peer_cid)
        if self._hcore_request_client_certificate:
            self.tls._request_client_certificate = True
        sent = [p for space in old_spaces for p in space.sent_packets.values()]
        if not sent:
            return
        # Their bytes are no longer in flight (as when a space is discarded),
        # and what they carried is sent again in the new spaces: RFC 9000
        # §17.2.5.3 (0-RTT data).  The old Initials' CRYPTO frames go to the
        # old, replaced crypto streams, so they are not sent twice.
        self._loss._cc.on_packets_expired(packets=[p for p in sent if p.in_flight])
        for space in old_spaces:
            space.sent_packets.clear()
        for packet in sent:
            for handler, args in packet.delivery_handlers:
                handler(QuicDeliveryState.LOST, *args)

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream
    ) -> None:
        # Locally opened unidirectional streams receive nothing, and once the
        # final size is known no more credit is useful (RFC 9000 §4.5).
        stream_id = stream.stream_id
        if (
            stream_id is None
            or not stream.max_stream_data_local
            or stream.receiver.is_finished
        ):
            return
        window = self._hcore_receive_window
        taken = stream.receiver.starting_offset() - self._hcore_held_bytes(stream_id)
        # RFC 9000 §4.2: grant more once half of the window has been taken, so
        # MAX_STREAM_DATA frames go out in steps, not one per event.
        if taken + window - stream.max_stream_data_local >= window // 2:
            stream.max_stream_data_local = taken + window
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local


def send_room(quic: QuicConnection, stream_id: int, buffer_limit: int) -> int:
    """How many more body bytes aioquic should be given for a stream now.

    The bound is the smaller of the peer's window for the stream (what it has
    allowed minus what aioquic already holds to send) and ``buffer_limit``
    minus what aioquic holds unacknowledged, less a DATA frame header.

    :param quic: the connection.
    :param stream_id: a stream this side can send on.
    :param buffer_limit: the most aioquic may hold for the stream.
    :return: a byte count, ``0`` or less when nothing should be handed over.
    """
    stream = quic._streams.get(stream_id)
    if stream is None:
        return 0
    sender = stream.sender
    queued = sender._buffer_stop
    held = queued - sender._buffer_start
    room = min(stream.max_stream_data_remote - queued, buffer_limit - held)
    return room - DATA_FRAME_OVERHEAD


def peer_bidi_stream_limit(quic: QuicConnection) -> int:
    """How many bidirectional streams the peer lets this side open in all.

    :return: the peer's current MAX_STREAMS for bidirectional streams
        (RFC 9000 §4.6), ``0`` before its transport parameters are known.
    """
    return quic._remote_max_streams_bidi


def streams_settled(quic: QuicConnection, control_stream_id: int) -> bool:
    """Whether closing the connection now would lose nothing in flight.

    That is when every bidirectional stream is done both ways (its data, or
    its reset, acknowledged) and everything sent on our control stream (a
    GOAWAY) was acknowledged.

    :param quic: the connection.
    :param control_stream_id: our HTTP/3 control stream.
    """
    control = quic._streams.get(control_stream_id)
    if (
        control is not None
        and control.sender._buffer_start != control.sender._buffer_stop
    ):
        return False
    return all(
        stream.is_finished
        for stream_id, stream in quic._streams.items()
        if not stream_is_unidirectional(stream_id)
    )


def unanswered_requests(quic: QuicConnection, first_stream_id: int) -> list[int]:
    """The client's request streams, from ``first_stream_id`` on, a server left alone.

    Those are bidirectional streams the client opened that aioquic still
    keeps and on which the server has not reset its side: a request whose
    head never arrived whole, which the HTTP/3 layer therefore never saw.
    Such a stream ends only if the client ends it, so a graceful close that
    waited for it (:func:`streams_settled`) could wait for ever.

    :param quic: a server's connection.
    :param first_stream_id: the lowest stream id to report (the GOAWAY's).
    :return: the QUIC stream ids.
    """
    return [
        stream_id
        for stream_id, stream in quic._streams.items()
        if stream_id >= first_stream_id
        and stream_is_client_initiated(stream_id)
        and not stream_is_unidirectional(stream_id)
        and stream.sender._reset_error_code is None
    ]


def peer_certificate(
    quic: QuicConnection,
) -> tuple[x509.Certificate | None, list[x509.Certificate]]:
    """The certificate (and chain) the peer presented in the handshake.

    :return: ``(None, [])`` when the peer presented none.
    """
    tls = quic.tls
    return tls._peer_certificate, list(tls._peer_certificate_chain)


def h3_buffered(h3: H3Connection | None, stream_id: int) -> int:
    """How many received bytes of a stream H3Connection keeps, unparsed.

    It keeps an incomplete frame header, a HEADERS frame until it is whole
    (of any size: aioquic does not enforce SETTINGS_MAX_FIELD_SECTION_SIZE),
    and everything behind a header block waiting for QPACK (RFC 9204 §2.1.2).
    Counting these as not taken stops a peer from making it keep more than
    the receive window.
    """
    record = h3._stream.get(stream_id) if h3 is not None else None
    return len(record.buffer) if record is not None else 0


def forget_h3_sending(h3: H3Connection, stream_id: int) -> None:
    """Tell H3Connection that this side will send nothing more on a stream.

    H3Connection keeps a record per stream until both directions ended;
    after hcore resets the sending side it would otherwise keep it for ever.

    :param h3: the HTTP/3 connection.
    :param stream_id: the QUIC stream id.
    """
    record = h3._stream.get(stream_id)
    if record is not None:
        record.sending_ended = True
        if record.is_ended():
            del h3._stream[stream_id]
