"""What the httptools (llhttp) HTTP/1.1 server and client share.

Both keep their phase as two flags, ``_tunnel`` and ``_closed`` (HTTP →
TUNNEL → CLOSED, or HTTP → CLOSED), and write message bodies themselves,
framed by ``Content-Length``, chunked coding (RFC 9112 §7.1) or the close
of the connection.  Neither part touches llhttp; see the theories of
operation in :mod:`hcore.protocols.http1._httptools_server` and
:mod:`hcore.protocols.http1._httptools_client`.
"""

from __future__ import annotations

from abc import abstractmethod

from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.events import ConnectionTerminated
from hcore.protocols.http1._common import HTTP1Base
from hcore.protocols.http1._headers import Framing, OutgoingBody
from hcore.protocols.http1._httptools_writer import last_chunk
from hcore.protocols.http1._limits import head_limits

__all__ = ("ToolsConnection",)


class ToolsConnection(HTTP1Base):
    """HTTP/1.1 over one connection with the phase in two flags, short of llhttp.

    Every way to the end goes through :meth:`_terminate`.  The message this
    side sends is its role's (a response, a request); when it is complete
    :meth:`_message_sent` says so.

    :param max_header_size: largest message head accepted, in bytes.
    :param max_header_count: most fields accepted in a head or trailers.
    """

    __slots__ = ("_closed", "_peer_closed", "_tunnel")

    def __init__(self, *, max_header_size: int, max_header_count: int) -> None:
        self._init_common()
        self._limits = head_limits(max_header_size, max_header_count)
        self._closed = False
        self._tunnel = False
        self._eof = False
        self._peer_closed = False
        #: The body of the message this side is sending, once its head went.
        self._sending: OutgoingBody | None = None

    def has_expired(self) -> bool:
        """Whether the connection is over (ConnectionTerminated was queued)."""
        return self._closed

    def submit_data(
        self, stream_id: int, data: bytes, end_stream: bool = False
    ) -> None:
        """Send a piece of the body, or raw bytes once the stream is a tunnel.

        :raises LocalProtocolError: if the stream is not sending a body, the
            piece breaks ``Content-Length``, or the stream already ended.
        """
        self._check_usable()
        if type(data) is not bytes:
            data = bytes(data)
        if self._tunnel:
            self._send_tunnelled(stream_id, data, end_stream)
            return
        body = self._sending
        if stream_id != self._stream_id or body is None:
            self._data_without_body(stream_id, data, end_stream)
            return
        size = len(data)
        body.check(size, end_stream)
        if size:
            if body.framing is Framing.CHUNKED:
                # RFC 9112 §7.1: chunk-size CRLF chunk-data CRLF.
                self._outgoing.append(b"%x\r\n%s\r\n" % (size, data))
            else:
                self._outgoing.append(data)
            if body.framing is Framing.LENGTH:
                body.remaining -= size
        if end_stream:
            self._end_body(body)

    @abstractmethod
    def _message_sent(self) -> None:
        """This side's message is complete: note it, then end what may end."""

    def _in_tunnel(self) -> bool:
        return self._tunnel

    def _check_usable(self) -> None:
        if self._closed:
            raise LocalProtocolError("the connection is closed")

    def _end_body(self, body: OutgoingBody) -> None:
        """End the body this side is sending (the last chunk, if chunked)."""
        if body.framing is Framing.CHUNKED:
            self._outgoing.append(b"0\r\n\r\n")
        body.ended = True
        self._message_sent()

    def _submit_trailers(
        self, body: OutgoingBody, headers: Headers, end_stream: bool
    ) -> None:
        """Send trailers, which end the chunked body (RFC 9112 §7.1.2)."""
        self._outgoing.append(last_chunk(headers, body, end_stream))
        body.ended = True
        self._message_sent()

    def _terminate(self, code: int, message: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._emit(ConnectionTerminated(code, message))
