"""The HTTP/3 protocol over aioquic: the public methods both roles share.

See :mod:`hcore.protocols.http3._core` for how the connection is driven.
The application submits (``submit_*``) and takes events; submissions go to
``H3Connection`` at once, except body bytes beyond what the peer's window
and ``stream_send_buffer`` allow, which wait in the stream.  ``submit_close()``
sends GOAWAY (RFC 9114 §5.2) and closes the QUIC connection once every
stream is done; with an error code it closes at once.  aioquic reports the
end after the closing or draining period (RFC 9000 §10.2), as
``ConnectionTerminated`` with the QUIC or HTTP/3 error code.  aioquic
exceptions never escape: a misused call is checked before it reaches aioquic,
and an unexpected failure inside aioquic ends the connection with
``H3_INTERNAL_ERROR``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aioquic.h3.connection import ErrorCode

from hcore._error_codes import HTTP3_ERROR_CODES, HTTPErrorCodes
from hcore._errors import LocalProtocolError
from hcore._types import Datagram, Headers
from hcore.events import ConnectionTerminated, DataReceived, Event
from hcore.protocols._protocols import HTTPOverQUICProtocol
from hcore.protocols.http3._control import encode_goaway
from hcore.protocols.http3._core import ProtocolCore
from hcore.protocols.http3._streams import (
    ReceiveState,
    SendState,
    check_response,
    check_trailers,
    header_list,
    is_informational,
    to_quic_id,
)

__all__ = ("AioquicProtocol",)


class AioquicProtocol(HTTPOverQUICProtocol, ProtocolCore):
    """HTTP/3 over QUIC, built on aioquic; the client and server share this.

    Use :class:`~hcore.protocols.http3.AioquicClientProtocol` or
    :class:`~hcore.protocols.http3.AioquicServerProtocol`, made by the
    factories.  Stream ids are 1, 3, 5, ... as on the other HTTP versions
    (QUIC streams 0, 4, 8, ...).
    """

    # -- what HTTPProtocol says about the connection ---------------------------

    @property
    def http_version(self) -> str:
        """Always ``"3"``."""
        return "3"

    @property
    def multiplexed(self) -> bool:
        """Always true: streams run side by side."""
        return True

    @property
    def error_codes(self) -> HTTPErrorCodes:
        """The HTTP/3 error codes (RFC 9114 §8.1)."""
        return HTTP3_ERROR_CODES

    @property
    def session_resumed(self) -> bool:
        """Whether the TLS handshake resumed an earlier session (a ticket was used)."""
        return self._session_resumed

    @property
    def early_data_accepted(self) -> bool:
        """Whether the server accepted the client's 0-RTT data."""
        return self._early_data_accepted

    def has_expired(self) -> bool:
        """Whether no new stream may be opened: after GOAWAY either way, or the end."""
        return (
            self._terminated
            or self._closing
            or self._goaway_sent is not None
            or self._goaway_received is not None
        )

    @property
    def connection_ids(self) -> Sequence[bytes]:
        """The connection ids the peer may address this connection by."""
        return tuple(self._connection_ids)

    # -- network side ----------------------------------------------------------

    def clock(self, now: float) -> None:
        """Tell the protocol the time, and let aioquic handle a due timer."""
        self._now = now
        quic = self._quic
        if quic is None or self._h3 is None or self._terminated:
            return
        timer = quic.get_timer()
        if timer is not None and now >= timer:
            try:
                quic.handle_timer(now)
            except Exception as exc:
                self._fail(exc)
                return
            self._after_input()

    def get_timer(self) -> float | None:
        """When aioquic next needs ``clock()``: ACK, loss, pacing or idle timer."""
        if self._quic is None or self._h3 is None or self._terminated:
            return None
        return self._quic.get_timer()

    def datagram_received(self, datagram: Datagram) -> None:
        """Feed a datagram; aioquic drops what it cannot use.

        :raises LocalProtocolError: if ``clock()`` was never called.
        """
        now = self._require_now()
        quic = self._quic
        if quic is None or self._h3 is None or self._terminated:
            # A server waiting for its first Initial, or the end.
            return
        address = (str(datagram.address[0]), int(datagram.address[1]))
        try:
            quic.receive_datagram(bytes(datagram.data), address, now)
        except Exception as exc:
            self._fail(exc)
            return
        self._after_input()

    def datagrams_to_send(self) -> Sequence[Datagram]:
        """Take aioquic's datagrams, each with its destination address."""
        quic = self._quic
        if quic is None or self._h3 is None or self._terminated or self._now is None:
            return []
        try:
            packets = quic.datagrams_to_send(self._now)
        except Exception as exc:
            self._fail(exc)
            return []
        # Issuing connection ids happens while packets are built.
        self._pump()
        return [Datagram(data, (str(addr[0]), int(addr[1]))) for data, addr in packets]

    def connection_lost(self) -> None:
        """The datagram path is gone: the connection ends here."""
        self._terminate(
            ConnectionTerminated(ErrorCode.H3_NO_ERROR, "the connection was lost")
        )

    # -- application side ------------------------------------------------------

    def submit_headers(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        """Send a request, a response (1xx or final) or trailers.

        :raises LocalProtocolError: on a closed stream, a malformed block,
            trailers that do not end the stream, or a closed connection.
        """
        h3 = self._usable()
        block = header_list(headers)
        quic_id = to_quic_id(stream_id)
        stream = self._streams.get(quic_id)
        if stream is None:
            self._open_stream(quic_id, block, end_stream)
            return
        if stream.send is SendState.IDLE:
            check_response(block)
            if is_informational(block):
                if end_stream:
                    raise LocalProtocolError(
                        "an interim response cannot end the stream"
                    )
                h3.send_headers(quic_id, block, end_stream=False)
                return
            h3.send_headers(quic_id, block, end_stream=end_stream)
            stream.send = SendState.ENDED if end_stream else SendState.OPEN
            self._forget_if_finished(stream)
        elif stream.send is SendState.OPEN:
            if not end_stream:
                raise LocalProtocolError("trailers must end the stream")
            check_trailers(block)
            stream.send = SendState.ENDED
            stream.trailers_held = block
            self._flush(stream)
        elif stream.send is SendState.ENDED:
            raise LocalProtocolError(f"stream {stream_id} was already ended")
        # STOPPED: the peer reads nothing more, so there is nothing to do.

    def submit_data(
        self, stream_id: int, data: bytes, end_stream: bool = False
    ) -> None:
        """Send body bytes; what the peer's window cannot take yet is held.

        :raises LocalProtocolError: before final headers, after the end of the
            stream, on an unknown stream or a closed connection.
        """
        self._usable()
        stream = self._streams.get(to_quic_id(stream_id))
        if stream is None:
            raise LocalProtocolError(f"stream {stream_id} is not open")
        if stream.send is SendState.STOPPED:
            return
        if stream.send is not SendState.OPEN:
            raise LocalProtocolError(
                f"stream {stream_id} cannot send data "
                + (
                    "before its headers"
                    if stream.send is SendState.IDLE
                    else "any more"
                )
            )
        stream.hold(bytes(data))
        if end_stream:
            stream.end_held = True
            stream.send = SendState.ENDED
        self._flush(stream)
        if stream.held:
            stream.drain_owed = True

    def pending_data_size(self, stream_id: int) -> int:
        """Body bytes of a stream still waiting for the peer's window."""
        if not isinstance(stream_id, int) or stream_id < 1 or stream_id % 2 == 0:
            return 0
        stream = self._streams.get(to_quic_id(stream_id))
        return stream.held_size if stream is not None else 0

    def submit_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        """Abandon a stream both ways (RESET_STREAM and STOP_SENDING).

        :param error_code: an HTTP/3 code; ``0`` means ``H3_NO_ERROR``.
        :raises LocalProtocolError: on an invalid stream id or error code.
        """
        quic_id = to_quic_id(stream_id)
        code = self._code(error_code)
        if self._terminated or self._closing:
            return
        stream = self._streams.pop(quic_id, None)
        if stream is None:
            return
        self._sending.pop(quic_id, None)
        self._abandon(quic_id, code, receiving=stream.receive is not ReceiveState.ENDED)
        self._maybe_close()

    def submit_close(self, error_code: int = 0) -> None:
        """Close gracefully with GOAWAY; with an error code, close at once.

        :param error_code: an HTTP/3 code; ``0`` means ``H3_NO_ERROR``, which
            lets open streams finish before the QUIC connection is closed.
        :raises LocalProtocolError: on an invalid error code.
        """
        code = self._code(error_code)
        if self._terminated or self._closing:
            return
        quic, h3 = self._quic, self._h3
        if quic is None or h3 is None:
            # Nothing was sent yet, so there is nobody to tell.
            self._terminate(ConnectionTerminated(code, None))
            return
        if code != ErrorCode.H3_NO_ERROR:
            self._close_quic(code, "")
            return
        if self._goaway_sent is None:
            self._goaway_sent = self._goaway_identifier()
            quic.send_stream_data(
                self._control_stream_id, encode_goaway(self._goaway_sent)
            )
        self._maybe_close()

    def next_event(self) -> Event | None:
        """Take the next event; taking body bytes returns their credit."""
        if not self._events:
            return None
        event = self._events.popleft()
        if isinstance(event, DataReceived) and event.data:
            stream = self._streams.get(to_quic_id(event.stream_id))
            if stream is not None:
                stream.received_held -= len(event.data)
        return event
