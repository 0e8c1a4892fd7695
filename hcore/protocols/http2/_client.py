"""The client end of an HTTP/2 connection."""

from __future__ import annotations

from h2.events import InformationalResponseReceived as H2InformationalResponseReceived
from h2.events import ResponseReceived as H2ResponseReceived

from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.events import HeadersReceived, InformationalResponseReceived
from hcore.protocols.http2._headers import (
    RESPONSE,
    MalformedHeaders,
    received,
    request_to_send,
)
from hcore.protocols.http2._options import Options
from hcore.protocols.http2._protocol import MAX_STREAM_ID, H2Protocol
from hcore.protocols.http2._stream import Stream

__all__ = ("H2ClientProtocol",)

_DEFAULTS = Options()


class H2ClientProtocol(H2Protocol):
    """The client end of an HTTP/2 connection: h2 over TLS or h2c.

    The connection preface and SETTINGS are queued on creation.  Requests
    are opened with :meth:`submit_headers` on the id from
    :meth:`get_available_stream_id`; server push is refused
    (SETTINGS_ENABLE_PUSH = 0).
    """

    _client_side = True

    def __init__(
        self,
        *,
        initial_window_size: int = _DEFAULTS.initial_window_size,
        connection_window_size: int = _DEFAULTS.connection_window_size,
        max_header_list_size: int = _DEFAULTS.max_header_list_size,
    ) -> None:
        """Make a client protocol and queue its preface.

        :param initial_window_size: per-stream receive window
            (SETTINGS_INITIAL_WINDOW_SIZE), 65,535 to 2**31 - 1.
        :param connection_window_size: connection receive window.
        :param max_header_list_size: largest response header block accepted
            (SETTINGS_MAX_HEADER_LIST_SIZE); larger ones reset their stream,
            twice as large ones close the connection.
        :raises ValueError: if a limit is out of range.
        """
        super().__init__(
            Options(
                initial_window_size=initial_window_size,
                connection_window_size=connection_window_size,
                max_header_list_size=max_header_list_size,
            )
        )
        self._handlers[H2ResponseReceived] = self._on_response
        self._handlers[H2InformationalResponseReceived] = self._on_informational

    def is_available(self) -> bool:
        """Whether a request can be opened now.

        False while the server's SETTINGS_MAX_CONCURRENT_STREAMS streams are
        open, and once the connection expired.
        """
        return (
            not self.has_expired()
            and len(self._streams) < self._conn.remote_settings.max_concurrent_streams
        )

    def get_available_stream_id(self) -> int:
        """Return the id for the next request (the same until it is used).

        :raises LocalProtocolError: if no request can be opened now.
        """
        if not self.is_available():
            raise LocalProtocolError("no stream can be opened on this connection now")
        return self._conn.get_next_available_stream_id()

    def submit_headers(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        """Send a request (on a new stream) or trailers (on an open one).

        :param stream_id: a new odd id above every id used so far, or an
            open stream for trailers.
        :param headers: the request (pseudo-headers first) or the trailers.
        :param end_stream: whether the request has no body; trailers must
            end the stream.
        :raises LocalProtocolError: if the id cannot be used, the server's
            concurrency limit is reached, the connection is closing, or the
            block is not a valid request or trailer block.
        """
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._sendable(stream_id)
            self._submit_trailers(stream, headers, end_stream)
            return
        if self._terminated:
            raise LocalProtocolError("the connection is closed")
        if self.has_expired():
            raise LocalProtocolError("the connection is closing: no new streams")
        conn = self._conn
        if (
            type(stream_id) is not int
            or stream_id % 2 == 0
            or not conn.highest_outbound_stream_id < stream_id <= MAX_STREAM_ID
        ):
            raise LocalProtocolError(
                f"stream {stream_id} is closed or not a new client stream"
            )
        remote = conn.remote_settings
        if len(self._streams) >= remote.max_concurrent_streams:
            raise LocalProtocolError("the server's concurrent stream limit is reached")
        fields = request_to_send(
            headers, allow_protocol=remote.enable_connect_protocol == 1
        )
        conn.send_block(stream_id, fields, end_stream)
        stream = Stream(stream_id)
        stream.final_sent = True
        self._streams[stream_id] = stream
        if end_stream:
            stream.end_submitted = stream.local_ended = True

    def _on_response(self, event: H2ResponseReceived) -> None:
        stream_id = event.stream_id
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        try:
            fields = self._checker.check(event.headers, RESPONSE)
        except MalformedHeaders:
            self._reset_malformed(stream_id, -1)
            return
        if event.stream_ended is None:
            self._events.append(HeadersReceived(stream_id, fields))
        else:
            self._events.append(HeadersReceived(stream_id, fields, True))
            self._remote_end(stream)

    def _on_informational(self, event: H2InformationalResponseReceived) -> None:
        stream_id = event.stream_id
        if stream_id not in self._streams:
            return
        try:
            fields = received(event.headers, RESPONSE, self._max_header_list_size)
        except MalformedHeaders:
            self._reset_malformed(stream_id, -1)
            return
        self._events.append(InformationalResponseReceived(stream_id, fields))
