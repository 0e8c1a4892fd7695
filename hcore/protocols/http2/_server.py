"""The server end of an HTTP/2 connection."""

from __future__ import annotations

from collections.abc import Sequence

from h2.events import RequestReceived as H2RequestReceived

from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.events import HeadersReceived
from hcore.protocols.http2._guard import ResetGuard
from hcore.protocols.http2._h2_receive import RequestOpened
from hcore.protocols.http2._headers import (
    REQUEST,
    MalformedHeaders,
    ResponseChecker,
)
from hcore.protocols.http2._options import Options
from hcore.protocols.http2._protocol import H2Protocol
from hcore.protocols.http2._stream import Stream

__all__ = ("H2ServerProtocol",)

_DEFAULTS = Options()


class H2ServerProtocol(H2Protocol):
    """The server end of an HTTP/2 connection: h2 over TLS or h2c.

    The server's SETTINGS are queued on creation; the client's connection
    preface is expected as the first bytes received.  Requests arrive as
    :class:`~hcore.events.HeadersReceived` on the client's stream ids and are
    answered with :meth:`submit_headers` on the same id.

    Protections, all clock-free: streams over ``max_concurrent_streams`` are
    refused (REFUSED_STREAM); after GOAWAY new streams are refused too; a
    malformed or oversized request header block resets its stream
    (PROTOCOL_ERROR, reported as :class:`~hcore.events.StreamResetSent`);
    and a peer that abandons more than ``max_rapid_resets`` of the last
    ``rapid_reset_window`` streams it opened gets GOAWAY ENHANCE_YOUR_CALM.
    """

    _client_side = False

    def __init__(
        self,
        *,
        initial_window_size: int = _DEFAULTS.initial_window_size,
        connection_window_size: int = _DEFAULTS.connection_window_size,
        max_header_list_size: int = _DEFAULTS.max_header_list_size,
        max_concurrent_streams: int = _DEFAULTS.max_concurrent_streams,
        enable_connect_protocol: bool = _DEFAULTS.enable_connect_protocol,
        max_rapid_resets: int = _DEFAULTS.max_rapid_resets,
        rapid_reset_window: int = _DEFAULTS.rapid_reset_window,
    ) -> None:
        """Make a server protocol and queue its SETTINGS.

        :param initial_window_size: per-stream receive window
            (SETTINGS_INITIAL_WINDOW_SIZE), 65,535 to 2**31 - 1.
        :param connection_window_size: connection receive window.
        :param max_header_list_size: largest request header block accepted
            (SETTINGS_MAX_HEADER_LIST_SIZE); larger ones reset their stream,
            twice as large ones close the connection.
        :param max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS.
        :param enable_connect_protocol: accept RFC 8441 extended CONNECT.
        :param max_rapid_resets: how many streams the client may abandon ...
        :param rapid_reset_window: ... among the last this many it opened.
        :raises ValueError: if a limit is out of range.
        """
        options = Options(
            initial_window_size=initial_window_size,
            connection_window_size=connection_window_size,
            max_header_list_size=max_header_list_size,
            max_concurrent_streams=max_concurrent_streams,
            enable_connect_protocol=enable_connect_protocol,
            max_rapid_resets=max_rapid_resets,
            rapid_reset_window=rapid_reset_window,
        )
        super().__init__(options)
        self._reset_guard = ResetGuard(
            options.max_rapid_resets, options.rapid_reset_window
        )
        self._guard = self._reset_guard
        self._max_streams = options.max_concurrent_streams
        self._responses = ResponseChecker()
        self._handlers[H2RequestReceived] = self._on_request
        self._handlers[RequestOpened] = self._on_request_opened

    def is_available(self) -> bool:
        """Whether the connection takes new streams: not expired, under the limit.

        A server never opens streams itself; this tells whether the client
        may open another one.
        """
        return not self.has_expired() and len(self._streams) < self._max_streams

    def get_available_stream_id(self) -> int:
        """Servers open no streams (server push is not supported).

        :raises LocalProtocolError: always.
        """
        raise LocalProtocolError("an HTTP/2 server does not open streams")

    def submit_headers(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        """Send a 1xx, the final response, or trailers on a request's stream.

        :param stream_id: the request's stream.
        :param headers: ``:status`` first; trailers have no pseudo-headers.
        :param end_stream: whether the response has no body (must be false
            for a 1xx, true for trailers).
        :raises LocalProtocolError: if the stream is not open, or the block
            does not fit where the response is (101 is not HTTP/2).
        """
        stream = self._sendable(stream_id)
        if stream.final_sent:
            self._submit_trailers(stream, headers, end_stream)
            return
        fields, informational, place = self._responses.check_block(headers)
        if informational:
            if end_stream:
                raise LocalProtocolError("a 1xx response cannot end the stream")
            self._conn.send_block(stream_id, fields, informational=True)
            return
        self._conn.send_block(stream_id, fields, end_stream, place=place)
        stream.final_sent = True
        if end_stream:
            self._end_submitted(stream)
            self._local_end(stream)

    def _on_request(self, event: H2RequestReceived) -> None:
        self._accept(event.stream_id, event.headers, event.stream_ended is not None)

    def _on_request_opened(self, event: RequestOpened) -> None:
        self._accept(event.stream_id, event.headers, event.end_stream)

    def _accept(
        self, stream_id: int, headers: Sequence[tuple[bytes, bytes]], ended: bool
    ) -> None:
        seq = self._reset_guard.opened()
        goaway = self._goaway_sent
        if goaway is not None and stream_id > goaway:
            # RFC 9113 §6.8: opened after our GOAWAY; not processed.
            self._reset_h2(stream_id, self.error_codes.refused_stream)
            return
        if len(self._streams) >= self._max_streams:
            # RFC 9113 §5.1.2: over our SETTINGS_MAX_CONCURRENT_STREAMS.
            self._reset_h2(stream_id, self.error_codes.refused_stream)
            if self._settings_acked:
                # Only abuse once the client knew the limit.
                self._peer_abandoned(seq)
            return
        try:
            fields = self._checker.check(headers, REQUEST)
        except MalformedHeaders:
            self._reset_malformed(stream_id, seq)
            return
        stream = Stream(stream_id, seq)
        self._streams[stream_id] = stream
        self._last_accepted = stream_id
        if ended:
            stream.remote_ended = True
            self._events.append(HeadersReceived(stream_id, fields, True))
        else:
            self._events.append(HeadersReceived(stream_id, fields))
