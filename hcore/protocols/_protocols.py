"""The sans-IO protocol interfaces every HTTP implementation provides.

A protocol is driven from two sides.  The application side submits headers,
data, resets and close requests (``submit_*``) and takes events
(``next_event``).  The network side feeds what arrived (``bytes_received`` or
``datagram_received``) and collects what must go out (``bytes_to_send`` or
``datagrams_to_send``).  No method blocks, reads a clock or touches a socket;
a QUIC protocol is told the time by ``clock(now)``.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence

from hcore._error_codes import HTTPErrorCodes
from hcore._types import Datagram, Headers
from hcore.events import Event

__all__ = (
    "HTTPOverQUICProtocol",
    "HTTPOverTCPProtocol",
    "HTTPProtocol",
    "OverQUICProtocol",
    "OverTCPProtocol",
)


class OverTCPProtocol(metaclass=ABCMeta):
    """The network side of a protocol that runs over one reliable byte stream."""

    # No instance dict of its own: a subclass with slots stays small (a
    # server holds one protocol per open connection).
    __slots__ = ()

    @abstractmethod
    def bytes_received(self, data: bytes) -> None:
        """Feed bytes that arrived from the peer.

        Bad input never raises here: it becomes events (and, where the
        protocol says so, bytes to send such as a 400 or a GOAWAY).

        :param data: the bytes, in the order they arrived; may be empty.
        """
        raise NotImplementedError

    @abstractmethod
    def eof_received(self) -> None:
        """Tell the protocol the peer will send no more bytes."""
        raise NotImplementedError

    @abstractmethod
    def connection_lost(self) -> None:
        """Tell the protocol the connection is gone in both directions.

        A :class:`~hcore.events.ConnectionTerminated` event follows unless
        one was already emitted.
        """
        raise NotImplementedError

    @abstractmethod
    def bytes_to_send(self) -> bytes:
        """Take the bytes waiting to be written to the peer.

        :return: the bytes, emptying the protocol's outgoing buffer; ``b""``
            when there is nothing to send.
        """
        raise NotImplementedError


class OverQUICProtocol(metaclass=ABCMeta):
    """The network side of a protocol that runs over QUIC datagrams."""

    __slots__ = ()

    @abstractmethod
    def clock(self, now: float) -> None:
        """Tell the protocol the time, and let it handle timers that are due.

        :param now: the current time in seconds, from a monotonic clock
            (typically the event loop's).
        """
        raise NotImplementedError

    @abstractmethod
    def get_timer(self) -> float | None:
        """Return when the protocol next wants :meth:`clock` to be called.

        :return: a time on the clock given to :meth:`clock`, or ``None`` when
            no timer is pending.
        """
        raise NotImplementedError

    @abstractmethod
    def datagram_received(self, datagram: Datagram) -> None:
        """Feed a datagram that arrived, with the address it came from.

        Malformed datagrams are dropped; they never raise.

        :param datagram: the payload and source address.
        """
        raise NotImplementedError

    @abstractmethod
    def datagrams_to_send(self) -> Sequence[Datagram]:
        """Take the datagrams waiting to be sent.

        :return: datagrams with their destination addresses, possibly none.
        """
        raise NotImplementedError

    @property
    @abstractmethod
    def connection_ids(self) -> Sequence[bytes]:
        """The connection ids the peer may currently address this connection by.

        A listener routes incoming datagrams by these; the set changes as the
        connection issues and retires ids.
        """
        raise NotImplementedError

    @abstractmethod
    def connection_lost(self) -> None:
        """Tell the protocol the datagram path is gone.

        A :class:`~hcore.events.ConnectionTerminated` event follows unless
        one was already emitted.
        """
        raise NotImplementedError


class HTTPProtocol(metaclass=ABCMeta):
    """The application side of an HTTP connection, the same in every version.

    Requests and responses use the HTTP/2 pseudo-headers on every version.
    A client opens a stream with ``submit_headers()`` on the id from
    :meth:`get_available_stream_id`; a server answers on the id of the
    request's :class:`~hcore.events.HeadersReceived`.
    """

    __slots__ = ()

    @property
    @abstractmethod
    def http_version(self) -> str:
        """The HTTP version spoken: ``"1.1"``, ``"2"`` or ``"3"``."""
        raise NotImplementedError

    @property
    @abstractmethod
    def multiplexed(self) -> bool:
        """Whether several streams may be open at once (HTTP/2 and HTTP/3)."""
        raise NotImplementedError

    @property
    @abstractmethod
    def error_codes(self) -> HTTPErrorCodes:
        """The error codes of this version, for resets and close."""
        raise NotImplementedError

    @abstractmethod
    def is_available(self) -> bool:
        """Whether a new stream can be opened now.

        False while the peer's concurrency limit is reached (or, on HTTP/1.1,
        while an exchange is in progress), and once the connection expired.
        """
        raise NotImplementedError

    @abstractmethod
    def has_expired(self) -> bool:
        """Whether the connection is closed or must not be used for new streams.

        True after GOAWAY either way, after ``Connection: close``, when stream
        ids run out, and once the connection terminated.  The I/O layer
        closes the transport when this is true and nothing is left to send.
        """
        raise NotImplementedError

    @abstractmethod
    def get_available_stream_id(self) -> int:
        """Return the id to open the next stream with.

        The same id is returned until ``submit_headers()`` uses it.

        :raises LocalProtocolError: when no stream can be opened.
        """
        raise NotImplementedError

    @abstractmethod
    def submit_headers(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        """Send a header block: a request, a response, a 1xx, or trailers.

        On a client the first block on a stream is the request; on a server
        a block whose ``:status`` is 1xx (except 101) is informational and
        the next one is the response.  A block sent after data carries
        trailers and must end the stream.

        :param stream_id: the stream.
        :param headers: the block, pseudo-headers first, names lower case.
        :param end_stream: whether nothing more will be sent on the stream.
        :raises LocalProtocolError: on a closed stream or a malformed block.
        """
        raise NotImplementedError

    @abstractmethod
    def submit_data(
        self, stream_id: int, data: bytes, end_stream: bool = False
    ) -> None:
        """Send a piece of the body (or of a tunnel) on a stream.

        Data beyond the peer's flow-control window is held by the protocol
        and sent as credit arrives; see :meth:`pending_data_size` and
        :class:`~hcore.events.SendBufferDrained`.

        :param stream_id: the stream.
        :param data: the bytes; may be empty to only end the stream.
        :param end_stream: whether nothing more will be sent on the stream.
        :raises LocalProtocolError: on a stream that cannot send data.
        """
        raise NotImplementedError

    @abstractmethod
    def pending_data_size(self, stream_id: int) -> int:
        """How many submitted bytes of a stream wait for flow-control credit.

        A writer that sees a non-zero value should wait for
        :class:`~hcore.events.SendBufferDrained` before submitting more, which
        keeps memory bounded by the peer's window plus one write.

        :param stream_id: the stream; an unknown or closed stream has ``0``.
        """
        raise NotImplementedError

    @abstractmethod
    def submit_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        """Abandon a stream at once, telling the peer why.

        On HTTP/1.1, which cannot reset one exchange, this closes the
        connection.  Resetting a stream that is already closed does nothing.

        :param stream_id: the stream.
        :param error_code: a code from :attr:`error_codes`.
        """
        raise NotImplementedError

    @abstractmethod
    def submit_close(self, error_code: int = 0) -> None:
        """Close the connection gracefully (GOAWAY, or ``Connection: close``).

        Streams already open may finish; no new ones are accepted.

        :param error_code: a code from :attr:`error_codes`.
        """
        raise NotImplementedError

    @abstractmethod
    def next_event(self) -> Event | None:
        """Take the next event, or ``None`` when there is none for now.

        Taking a :class:`~hcore.events.DataReceived` returns its flow-control
        credit to the peer.
        """
        raise NotImplementedError


class HTTPOverTCPProtocol(HTTPProtocol, OverTCPProtocol):
    """An HTTP protocol over one TCP (or TLS) connection: HTTP/1.1 or HTTP/2."""

    __slots__ = ()


class HTTPOverQUICProtocol(HTTPProtocol, OverQUICProtocol):
    """An HTTP protocol over a QUIC connection: HTTP/3."""

    __slots__ = ()
