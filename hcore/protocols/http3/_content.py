"""aioquic's H3Connection, told which messages have no content.

Theory of operation
-------------------

RFC 9114 §4.1.2 makes a message malformed when its ``content-length`` is not
the sum of its DATA frames, and aioquic checks that at the end of every
stream.  But ``content-length`` does not always describe content that
follows (RFC 9110 §8.6):

* a response to HEAD carries none, whatever the field says (RFC 9110
  §9.3.2): the field tells the length a GET would have had;
* neither does a 1xx, 204 or 304 response (RFC 9110 §6.4.1, §15.3.5,
  §15.4.5); RFC 9114 §4.1.2 says such a response "can have a non-zero
  content-length field, even though no content is included in DATA frames";
* after a 2xx to CONNECT the stream carries a tunnel (RFC 9114 §4.4), whose
  bytes no length describes; a CONNECT request has no content either
  (RFC 9110 §9.3.6), its DATA frames are the tunnel too.

aioquic only knows the 1xx case: it takes the field of a HEAD, 204 or 304
response as the length the DATA must have, so a server answering HEAD with
``content-length: 1000`` and no body made the client close the whole
connection with H3_MESSAGE_ERROR.  :class:`ContentAwareH3Connection` keeps
aioquic's check where it applies and replaces the expected length elsewhere:

* the client notes the method of each request it sends (only HEAD and
  CONNECT matter), in :meth:`ContentAwareH3Connection.send_headers`;
* when a final response's (or, on a server, a request's) header block is
  decoded, the stream gets its rule: no content (HEAD, 204, 304: any DATA
  byte makes the message malformed, as HTTP/2 does) or no length at all
  (a tunnel);
* the end-of-stream check uses the rule instead of the field.

The rules and methods are kept per aioquic stream record in weak mappings,
so they go when aioquic drops the record.  Sending is not checked by aioquic,
so a server answering HEAD with the field and no DATA needs nothing here.
This module overrides two private methods of ``H3Connection``
(``_decode_headers`` and ``_check_content_length``) and reads its stream
records (``_stream``), as :mod:`~hcore.protocols.http3._qpack` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from weakref import WeakKeyDictionary

from aioquic.h3.connection import H3Stream, HeadersState, MessageError
from aioquic.quic.connection import QuicConnection

from hcore.protocols.http3._qpack import BoundedH3Connection

__all__ = ("ContentAwareH3Connection",)

# Requests whose response framing depends on the method (RFC 9110 §8.6).
_SPECIAL_METHODS = frozenset((b"HEAD", b"CONNECT"))
# Final statuses that never have content (RFC 9110 §15.3.5, §15.4.5).
_NO_CONTENT_STATUSES = frozenset((b"204", b"304"))


def _pseudo(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The value of a pseudo-header, looking only where pseudo-headers are."""
    for key, value in headers:
        if not key.startswith(b":"):
            return None
        if key == name:
            return value
    return None


class ContentAwareH3Connection(BoundedH3Connection):
    """H3Connection that knows HEAD, 204, 304 and tunnels have no sized content.

    :param quic: the QUIC connection.
    :param max_table_capacity: QPACK dynamic table capacity we accept.
    :param blocked_streams: streams that may wait for table updates.
    :param max_field_section_size: largest field section we accept.
    """

    def __init__(
        self,
        quic: QuicConnection,
        *,
        max_table_capacity: int,
        blocked_streams: int,
        max_field_section_size: int,
    ) -> None:
        # The method of the client's HEAD and CONNECT requests.
        self._hcore_methods: WeakKeyDictionary[H3Stream, bytes] = WeakKeyDictionary()
        # The content length a message must have instead of its field's:
        # 0 (no content) or None (a tunnel, no length).
        self._hcore_lengths: WeakKeyDictionary[H3Stream, int | None] = (
            WeakKeyDictionary()
        )
        super().__init__(
            quic,
            max_table_capacity=max_table_capacity,
            blocked_streams=blocked_streams,
            max_field_section_size=max_field_section_size,
        )

    def send_headers(
        self,
        stream_id: int,
        headers: list[tuple[bytes, bytes]],
        end_stream: bool = False,
    ) -> None:
        """Send a header block; a client notes a HEAD or CONNECT request."""
        record = self._stream.get(stream_id)
        is_request = self._is_client and (
            record is None or record.headers_send_state is HeadersState.INITIAL
        )
        super().send_headers(stream_id, headers, end_stream)
        if not is_request:
            return
        method = _pseudo(headers, b":method")
        record = self._stream.get(stream_id)
        if method is not None and method in _SPECIAL_METHODS and record is not None:
            self._hcore_methods[record] = method

    def _decode_headers(
        self, stream_id: int, frame_data: bytes | None
    ) -> list[tuple[bytes, bytes]]:
        headers = super()._decode_headers(stream_id, frame_data)
        record = self._stream.get(stream_id)
        if record is None or record.headers_recv_state is not HeadersState.INITIAL:
            # Trailers, or a push stream's block: the rule was set or never is.
            return headers
        if self._is_client:
            self._response_rule(record, headers)
        elif _pseudo(headers, b":method") == b"CONNECT":
            # RFC 9110 §9.3.6, RFC 9114 §4.4: its DATA frames are the tunnel.
            self._hcore_lengths[record] = None
        return headers

    def _response_rule(
        self, record: H3Stream, headers: Sequence[tuple[bytes, bytes]]
    ) -> None:
        status = _pseudo(headers, b":status")
        if status is None or status.startswith(b"1"):
            # A PUSH_PROMISE's request block, or an interim response, which
            # aioquic already exempts (RFC 9110 §6.4.1).
            return
        method = self._hcore_methods.get(record)
        if method == b"HEAD" or status in _NO_CONTENT_STATUSES:
            # RFC 9110 §9.3.2, §6.4.1; RFC 9114 §4.1.2.
            self._hcore_lengths[record] = 0
        elif method == b"CONNECT" and status.startswith(b"2"):
            # RFC 9110 §8.6: a 2xx to CONNECT starts a tunnel.
            self._hcore_lengths[record] = None

    def _check_content_length(self, stream: H3Stream) -> None:
        if stream not in self._hcore_lengths:
            super()._check_content_length(stream)
            return
        expected = self._hcore_lengths[stream]
        if expected is not None and stream.content_length != expected:
            # RFC 9110 §6.4.1: this message has no content, so DATA is wrong.
            raise MessageError("a message without content carried DATA")
