"""HTTPConnection: one sans-IO protocol (any HTTP version) over one network stream.

The public face of the connection; how it is driven (no task of its own,
routing, bounded memory, closing) is explained in
:mod:`hcore_io.connections._driver`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, UnreliableObjectStream

from hcore import Address, Datagram, HCoreError, Headers, HTTPErrorCodes
from hcore.events import Event
from hcore.protocols import HTTPProtocol
from hcore_io._exceptions import ConnectionClosed, NetworkError, ReadTimeout
from hcore_io.connections._driver import (
    ACCEPT,
    AVAILABLE,
    CONNECTION,
    DEFAULT_MAX_BUFFERED_DATA,
    logger,
    stream_key,
)
from hcore_io.connections._state import DeadlinePassed, StreamState
from hcore_io.connections._stream import HTTPStream, timed
from hcore_io.connections._stream_ops import StreamOperations
from hcore_io.connections._transport_base import normalize_address

__all__ = ("DEFAULT_MAX_BUFFERED_DATA", "HTTPConnection")

# How long aclose() may spend sending the close (GOAWAY) before closing.
_CLOSE_GRACE = 5.0
# How long aclose() waits for a QUIC protocol to finish closing (its
# CONNECTION_CLOSE goes out once its streams' resets are acknowledged).
_QUIC_CLOSE_GRACE = 1.0
_CLOSING = "closing"


# The key tuples of the snapshots, one per distinct set of keys: every
# connection of a listener has the same, and keeps only its values.
_SNAPSHOT_KEYS: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _snapshot(
    provider: anyio.TypedAttributeProvider,
) -> tuple[tuple[Any, ...], tuple[object, ...]]:
    # A closed socket cannot tell its addresses any more (getsockname fails).
    # Plain values, not one closure each, and no dict: a connection keeps
    # them for life.
    keys: list[Any] = []
    values: list[object] = []
    for attribute, getter in provider.extra_attributes.items():
        try:
            value = getter()
        except (OSError, ValueError, anyio.TypedAttributeLookupError):
            continue
        keys.append(attribute)
        values.append(value)
    key_tuple = tuple(keys)
    return _SNAPSHOT_KEYS.setdefault(key_tuple, key_tuple), tuple(values)


def _attribute(
    snapshot: tuple[tuple[Any, ...], tuple[object, ...]], key: object
) -> object:
    keys, values = snapshot
    for index, candidate in enumerate(keys):
        if candidate == key:
            return values[index]
    return None


def _constant(value: object) -> Callable[[], object]:
    return lambda: value


class HTTPConnection(StreamOperations, anyio.TypedAttributeProvider):
    """An HTTP connection: one protocol (any version) over one network stream.

    Openers and listeners make connections; a user with a stream of their own
    can make one too.  Two ways to use it:

    * per stream, by many tasks at once: :meth:`open_stream` (client) or
      :meth:`accept_stream` (server) gives an :class:`HTTPStream` that sends
      and receives for one exchange;
    * low level, by one task: :meth:`send_headers`, :meth:`send_data`,
      :meth:`send_stream_reset` with explicit stream ids, and
      :meth:`receive_event` for every event, like the protocol's own.

    The connection needs no task group: the tasks that wait on it do its
    reading and writing (see :mod:`hcore_io.connections._driver` for why and
    how).  What each waiting task is told when things end:

    * the peer resets a stream: its :class:`HTTPStream` receives the
      ``StreamResetReceived`` event, and sending on it raises
      :class:`StreamReset`;
    * the connection ends (either side closes it, it breaks, or
      :meth:`aclose`): stream receivers get the events already queued, then
      :class:`~hcore_io.ConnectionClosed`; :meth:`receive_event` gets
      ``ConnectionTerminated``, then ``ConnectionClosed``;
      :meth:`accept_stream` returns ``None``;
    * a task cancelled while it waits on its stream resets that stream
      (``cancel``); the connection serves the others on;
    * ``timeout=`` arguments raise :class:`~hcore_io.ReadTimeout` or
      :class:`~hcore_io.WriteTimeout` and leave the stream as it was.

    Memory stays bounded: a queue holding more than ``max_buffered_data``
    makes the connection stop taking events from the protocol, so flow
    control holds the peer back (a stalled reader holds the connection's
    other streams back with it, within that bound).  Typed attributes of the
    stream (``SocketAttribute``, ``TLSAttribute``) are readable with
    :meth:`extra`.

    :param protocol: a fresh protocol; an :class:`~hcore.protocols.HTTPOverTCPProtocol`
        with a byte stream, or an :class:`~hcore.protocols.HTTPOverQUICProtocol`
        with a datagram stream.
    :param stream: the network stream, already connected (TLS done).
    :param initial_data: bytes already read from ``stream``, fed first.
    :param max_buffered_data: bound of each event queue, in data bytes.
    :raises TypeError: if the protocol and the stream do not fit together.
    """

    def __init__(
        self,
        protocol: HTTPProtocol,
        stream: ByteStream | UnreliableObjectStream[Datagram],
        *,
        initial_data: bytes = b"",
        max_buffered_data: int = DEFAULT_MAX_BUFFERED_DATA,
    ) -> None:
        super().__init__(
            protocol,
            stream,
            initial_data=initial_data,
            max_buffered_data=max_buffered_data,
        )
        self._attributes = _snapshot(self._transport)

    # -- what the protocol says ------------------------------------------------

    @property
    def http_version(self) -> str:
        """The HTTP version spoken: ``"1.1"``, ``"2"`` or ``"3"``."""
        return self._protocol.http_version

    @property
    def error_codes(self) -> HTTPErrorCodes:
        """The error codes of this version, for :meth:`send_stream_reset`."""
        return self._protocol.error_codes

    @property
    def local_address(self) -> Address | None:
        """This side's address, if the stream has one."""
        return normalize_address(
            _attribute(self._attributes, SocketAttribute.local_address)
        )

    @property
    def remote_address(self) -> Address | None:
        """The peer's address, if the stream has one."""
        return normalize_address(
            _attribute(self._attributes, SocketAttribute.remote_address)
        )

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The stream's typed attributes (addresses, TLS details).

        Read once, when the connection was made, so that they stay readable
        (for logging) after the stream is closed.
        """
        keys, values = self._attributes
        return {key: _constant(value) for key, value in zip(keys, values, strict=True)}

    def is_available(self) -> bool:
        """Whether a new stream can be opened now."""
        return not self._transport_closed and self._protocol.is_available()

    def get_available_stream_id(self) -> int:
        """Return the id the next stream opened with :meth:`send_headers` gets.

        :raises hcore.LocalProtocolError: when no stream can be opened.
        """
        return self._protocol.get_available_stream_id()

    # -- life cycle --------------------------------------------------------------

    async def open(self) -> None:
        """Send what the protocol says first (preface, SETTINGS, QUIC Initial).

        Calling it again does nothing.

        :raises hcore_io.ConnectionClosed: if the connection was closed.
        :raises hcore_io.WriteError: if writing failed.
        """
        if self._opened:
            return
        self._check_usable()
        self._opened = True
        await self._flush()
        logger.debug(
            "opened HTTP/%s connection %s -> %s",
            self.http_version,
            self.local_address,
            self.remote_address,
        )

    async def aclose(self) -> None:
        """Close the connection: a quick graceful close, then the stream.

        The peer is sent a graceful close (GOAWAY), then a reset for every
        stream still open; on HTTP/3 the protocol's CONNECTION_CLOSE is
        awaited briefly, since closing a QUIC stream tells the peer nothing;
        if the peer holds the graceful close up past that, the protocol is
        made to close at once (its CONNECTION_CLOSE carries the ``cancel``
        code).
        Tasks waiting on the abandoned streams get
        :class:`~hcore_io.ConnectionClosed`.  Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if not self._transport_closed:
                with anyio.move_on_after(_CLOSE_GRACE):
                    try:
                        await self._close_gracefully()
                    except (HCoreError, NetworkError):
                        pass
            await self._close_transport()

    async def close_gracefully(self) -> None:
        """Start a graceful close: no new streams, those in flight may finish.

        Sends GOAWAY (HTTP/2, HTTP/3) or makes the next response say
        ``Connection: close`` (HTTP/1.1).  The transport is closed once the
        streams in flight are over (on HTTP/3, once the protocol's
        CONNECTION_CLOSE went out); :meth:`accept_stream` then returns
        ``None``.  :meth:`aclose` still ends everything at once.

        :raises hcore_io.WriteError: if writing failed.
        """
        if self._closed or self._transport_closed:
            return
        protocol = self._protocol
        try:
            protocol.submit_close(protocol.error_codes.no_error)
        except HCoreError:
            return
        self._closing_gracefully = True
        self._transport.dirty = True
        # An HTTP/1.1 connection with no exchange in flight takes no more
        # requests: a task waiting for one stops now (see _has_accepted).
        self._wake(ACCEPT)
        await self._flush()

    async def _close_gracefully(self) -> None:
        protocol = self._protocol
        protocol.submit_close(protocol.error_codes.no_error)
        self._transport.dirty = True
        for state in list(self._streams.values()):
            if not state.finished:
                state.lost = True
                protocol.submit_stream_reset(
                    state.stream_id, protocol.error_codes.cancel
                )
                self._wake(stream_key(state.stream_id))
        await self._flush()
        if self._transport.closes_itself and self._terminated is None:
            with anyio.move_on_after(_QUIC_CLOSE_GRACE):
                await self._wait(_CLOSING, lambda: self._terminated is not None)
            if self._terminated is None:
                # The peer did not let the graceful close finish in time (it
                # acknowledged nothing, or keeps a stream open): close at
                # once (RFC 9000 §10.2), since closing the stream would tell
                # it nothing, and it would learn only by its idle timeout.
                # Nothing happens if the protocol sent its CONNECTION_CLOSE
                # already.
                protocol.submit_close(protocol.error_codes.cancel)
                self._transport.dirty = True
                await self._flush()

    async def __aenter__(self) -> HTTPConnection:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- per-stream use ----------------------------------------------------------

    async def open_stream(
        self,
        headers: Headers,
        *,
        end_stream: bool = False,
        on_submitted: Callable[[], object] | None = None,
    ) -> HTTPStream:
        """Start a request on a new stream, waiting for a free stream slot if need be.

        Picking the stream id and sending the headers happen at once, so
        many tasks may open streams concurrently; the header blocks of
        tasks that open streams while another task writes leave with its
        write.

        :param headers: the request headers, pseudo-headers first.
        :param end_stream: whether the request has no body.
        :param on_submitted: called once the stream took its slot (its
            headers are handed to the protocol), before they are written:
            a pool that serializes openings can let the next one go then.
        :return: the stream, for its task to send the body and read the response.
        :raises hcore_io.ConnectionClosed: if the connection is closed or
            takes no new streams (GOAWAY, ``Connection: close``).
        :raises hcore.LocalProtocolError: if the headers are malformed.
        """
        self._enter_stream_mode()
        protocol = self._protocol
        await self._wait(
            AVAILABLE, lambda: protocol.is_available() or self.has_expired()
        )
        self._check_usable()
        if protocol.has_expired() or not protocol.is_available():
            raise ConnectionClosed("the connection takes no new streams")
        state = self._submit_new_stream(headers, end_stream, on_submitted)
        try:
            await self._flush()
        except anyio.get_cancelled_exc_class():
            await self._abandon(state)
            raise
        return HTTPStream(self, state)

    async def accept_stream(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (see module doc)
    ) -> HTTPStream | None:
        """Wait for the next request the peer starts.

        :param timeout: seconds to wait (a server's keep-alive timeout); the
            connection stays as it was when it passes.
        :return: the stream, its request headers first in line; ``None`` once
            the connection is over and no more requests can come (on
            HTTP/1.1, as soon as :meth:`close_gracefully` left no exchange
            in flight).
        :raises hcore_io.ReadTimeout: if ``timeout`` passed first.
        """
        if not self._stream_mode:
            self._enter_stream_mode()
        self._accepting = True
        if not self._streams:
            # A dict keeps its table when its last key goes: an idle
            # HTTP/1.1 connection would hold its last stream's (160 bytes).
            self._streams = {}
        # A deadline for the wait, which bounds the read it does with the
        # read's own cancel scope: no timer of its own.
        deadline = math.inf if timeout is None else self._read_timer.now() + timeout
        try:
            await self._wait(ACCEPT, self._has_accepted, deadline)
        except ConnectionClosed:
            return None
        except DeadlinePassed:
            raise ReadTimeout(f"no request came within {timeout} s") from None
        return self._accepted.pop(0) if self._accepted else None

    def _has_accepted(self) -> bool:
        # Or no request can come any more: after close_gracefully, an
        # HTTP/1.1 protocol that has expired has no exchange in flight
        # (HTTP/2 and HTTP/3 peers may still open streams the GOAWAY
        # allowed; they end when the transport closes).  This returns
        # before the closing handshake (half-close, then linger) is over;
        # the caller's aclose() ends it.
        return bool(self._accepted) or (
            self._closing_gracefully
            and not self._protocol.multiplexed
            and self._protocol.has_expired()
        )

    # -- low-level use -----------------------------------------------------------

    async def send_headers(
        self,
        stream_id: int,
        headers: Headers,
        end_stream: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (see module doc)
    ) -> None:
        """Send a header block: a request, a response, a 1xx, or trailers.

        :param timeout: seconds the write may take.
        :raises hcore_io.ConnectionClosed: if the connection is closed.
        :raises hcore_io.WriteError: if writing failed.
        :raises hcore_io.WriteTimeout: if ``timeout`` passed.
        :raises hcore.LocalProtocolError: if the protocol refuses the block.
        """

        async def send() -> None:
            self._check_usable()
            self._protocol.submit_headers(stream_id, headers, end_stream)
            self._transport.dirty = True
            state = self._streams.get(stream_id)
            if state is None:
                state = self._streams[stream_id] = StreamState(stream_id, self._limit)
            state.local_ended = state.local_ended or end_stream
            await self._flush()
            self._forget_if_done(state)

        await timed(send, timeout, "sending headers")

    async def send_data(
        self,
        stream_id: int,
        data: bytes,
        end_stream: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (see module doc)
    ) -> None:
        """Send body bytes, then wait while the peer's flow control holds them back.

        :param timeout: seconds the write (and the wait for credit) may take.
        :raises hcore_io.ConnectionClosed: if the connection is closed.
        :raises hcore_io.WriteError: if writing failed.
        :raises hcore_io.WriteTimeout: if ``timeout`` passed.
        :raises hcore.LocalProtocolError: if the stream cannot send data.
        """

        async def send() -> None:
            self._check_usable()
            await self._submit_data(
                stream_id, data, end_stream, self._streams.get(stream_id)
            )

        await timed(send, timeout, "sending data")

    async def send_stream_reset(
        self, stream_id: int, error_code: int | None = None
    ) -> None:
        """Abandon a stream at once (on HTTP/1.1 this closes the connection).

        :param error_code: a code from :attr:`error_codes`; ``cancel`` if omitted.
        """
        self._check_usable()
        code = self._protocol.error_codes.cancel if error_code is None else error_code
        self._protocol.submit_stream_reset(stream_id, code)
        self._transport.dirty = True
        state = self._streams.get(stream_id)
        if state is not None:
            self._mark_reset(state, code)
        await self._flush()

    async def receive_event(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (see module doc)
    ) -> Event:
        """Receive the next event not routed to an :class:`HTTPStream`.

        Without per-stream use that is every event, in the protocol's order,
        ending with ``ConnectionTerminated`` when the peer or the network
        ends the connection.  After :meth:`aclose` it raises at once.

        :param timeout: seconds to wait.
        :raises hcore_io.ConnectionClosed: after ``ConnectionTerminated`` was
            received, or if the connection was closed.
        :raises hcore_io.ReadTimeout: if ``timeout`` passed.
        """

        async def receive() -> Event:
            if self._closed:
                raise self._closed_error()
            await self._wait(CONNECTION, lambda: bool(self._events))
            event, relieved = self._events.pop()
            if relieved and not self._stream_mode:
                self._full_queues -= 1
            await self._resume()
            return event

        return await timed(receive, timeout, "receiving an event", ReadTimeout)

    def _make_stream(self, state: StreamState) -> HTTPStream:
        return HTTPStream(self, state)
