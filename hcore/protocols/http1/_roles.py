"""What each side of HTTP/1.1 does the same way on h11 and on httptools.

:class:`ServerRole` and :class:`ClientRole` are mixed into the protocols of
both parsers (before their base, e.g. ``class
H11ServerProtocol(ServerRole, H11Protocol)``): the answers about opening
streams, the checks of a response that switches protocols, and what
``submit_data`` means on a stream that is not sending a body.  They use only
state both parsers keep under the same names.
"""

from __future__ import annotations

from hcore._errors import LocalProtocolError
from hcore.protocols.http1._common import HTTP1Base

__all__ = ("ClientRole", "ServerRole")


class ServerRole(HTTP1Base):
    """The server's side: requests arrive, and are answered in order."""

    # The state below lives in the concrete class's slots (two bases with
    # slots of their own could not be combined); mypy sees only this class's
    # empty ones, hence the ignores where it is assigned.
    __slots__ = ()

    #: A request head arrived on the current stream.
    _request_seen: bool
    _request_method: bytes
    #: The request proposed an Upgrade (RFC 9110 §7.8).
    _request_upgrade: bool
    #: The request proposed a switch and ended; whether it ended for good
    #: depends on the answer.
    _end_deferred: bool

    def is_available(self) -> bool:
        """Always false: an HTTP/1.1 server does not open streams."""
        return False

    def get_available_stream_id(self) -> int:
        """Refuse: streams are opened by the client.

        :raises LocalProtocolError: always.
        """
        raise LocalProtocolError("an HTTP/1.1 server does not open streams")

    def _switching(self, status: int) -> bool:
        """Whether a final response with ``status`` starts a tunnel.

        A 101 may answer a complete Upgrade request and a 2xx a complete
        CONNECT (RFC 9110 §7.8, §9.3.6), as h11's MIGHT_SWITCH_PROTOCOL.

        :raises LocalProtocolError: for a 101 or a 2xx to CONNECT that
            cannot switch now.
        """
        method = self._request_method
        switching = self._end_deferred and (
            (status == 101 and self._request_upgrade)
            or (method == b"CONNECT" and 200 <= status < 300)
        )
        if status == 101 and not switching:
            raise LocalProtocolError("101 answers only a complete Upgrade request")
        if method == b"CONNECT" and status // 100 == 2 and not switching:
            raise LocalProtocolError("the CONNECT request is not complete yet")
        return switching

    def _message_ended(self) -> None:
        """The request ended without trailers."""
        if self._request_method == b"CONNECT" or self._request_upgrade:
            # RFC 9110 §9.3.6: a CONNECT (or Upgrade) request's side stays
            # open for the tunnel unless the answer refuses it.
            self._end_deferred = True  # type: ignore[misc]  # a concrete slot
        else:
            self._emit_end()

    def _data_without_body(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        if stream_id == self._stream_id and self._request_seen:
            raise LocalProtocolError(
                f"stream {stream_id}: send the response headers before data"
            )
        raise LocalProtocolError(f"stream {stream_id} has no request to answer")


class ClientRole(HTTP1Base):
    """The client's side: one request at a time, on the available stream."""

    # The state below lives in the concrete class's slots (see ServerRole).
    __slots__ = ()

    #: The request proposed a tunnel (CONNECT, Upgrade); its head was the
    #: whole request on the wire.
    _proposed_tunnel: bool
    #: An earlier exchange whose request side the caller left open after
    #: the tunnel was refused; ending it is accepted and does nothing.
    _dangling: int | None

    def get_available_stream_id(self) -> int:
        """Return the stream id the next request must use.

        :raises LocalProtocolError: while an exchange runs, or once the
            connection is closing or closed.
        """
        if not self.is_available():
            raise LocalProtocolError("HTTP/1.1 connection is busy or closed")
        return self._stream_id

    def _data_without_body(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        awaiting = (
            stream_id == self._stream_id
            and self._proposed_tunnel
            and not self._tunnel_local_ended
        )
        if awaiting or stream_id == self._dangling:
            if data:
                raise LocalProtocolError(
                    f"stream {stream_id} has no tunnel: the server has not agreed"
                )
            if end_stream:
                if awaiting:
                    self._tunnel_local_ended = True
                else:
                    self._dangling = None  # type: ignore[misc]  # a concrete slot
            return
        raise LocalProtocolError(f"stream {stream_id} is not sending a body")

    def _stream_forgotten(self, stream_id: int) -> None:
        if stream_id == self._dangling:
            self._dangling = None  # type: ignore[misc]  # a concrete slot
