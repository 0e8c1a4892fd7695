"""A QUIC listener: one datagram socket, one :class:`QUICStream` per connection.

Theory of operation: :meth:`QUICListener.serve` is the only reader of the
socket (taking whole batches where the socket offers them, see
:func:`~hcore_io.networking._datagrams.receive_datagrams`).  For each
datagram it reads the first packet's destination connection id (RFC 9000
§5.2) with :func:`hcore.protocols.http3.parse_datagram_route` and looks it
up in the routing table:

- a known id: the datagram is queued on that connection's stream (dropped
  if the queue is full, as UDP may);
- an Initial of a supported version, padded to 1200 bytes, with an unknown
  id (RFC 9000 §5.2.2): a new stream is made, registered under that id *at
  once* (so the client's next Initial datagrams, which carry the same id
  until the server's first Initial reaches it, RFC 9000 §7.2, join it rather
  than start a second connection), handed the datagram, and passed to the
  handler;
- a long header of an unsupported version, in a datagram large enough to
  start a connection: answered with Version Negotiation (RFC 9000 §6.1);
- anything else: dropped.

The connection layer calls :meth:`QUICStream.update_connection_ids` as the
protocol issues and retires ids.  The id of the first Initial stays routed
to the stream as long as it is open, whatever the updates say, since a
client may still use it for Initial and 0-RTT packets; closing the stream
removes all its ids.  Streams send straight through the shared socket, to
whatever address each datagram names (QUIC peers may migrate, RFC 9000 §9).

Closing the listener stops accepting, as closing a TCP listener does:
from then on a datagram that would start a connection is dropped, while
the connections already accepted keep their routes, and the socket stays
open (and read) until the last of their streams is closed.  So a server can
close its listener and still let its QUIC connections finish gracefully
(GOAWAY, the last responses, CONNECTION_CLOSE).  When :meth:`QUICListener.serve`
ends for any other reason (its task is cancelled, the socket breaks), every
connection's stream ends with it.

Streams keep AnyIO's semantics: ``receive`` raises
:exc:`anyio.EndOfStream` once the listener stopped reading and the queue
is empty, ``send`` raises :exc:`anyio.BrokenResourceError` once the socket
is gone, and both raise :exc:`anyio.ClosedResourceError` once the stream
is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import Listener, SocketAttribute, TaskGroup, UnreliableObjectStream

from hcore import Address, Datagram
from hcore_io.networking._datagrams import receive_datagrams
from hcore_io.networking._interfaces import QUICStream
from hcore_io.networking._queue import Queue

__all__ = ("QUICListener",)

_logger = logging.getLogger("hcore_io.networking")

# RFC 9000 §7.2: the id a client picks for its first Initial.
_MIN_INITIAL_CONNECTION_ID = 8


class _RoutedQUICStream(QUICStream):
    """The datagrams of one QUIC connection of a :class:`QUICListener`."""

    def __init__(
        self,
        router: _Router,
        original_connection_id: bytes,
        remote_address: Address,
        queue_size: int,
    ) -> None:
        self._router = router
        self.original_connection_id = original_connection_id
        self.connection_ids: set[bytes] = {original_connection_id}
        self._remote_address = remote_address
        self.inbox: Queue[Datagram] = Queue(queue_size)
        self._closed = False

    async def receive(self) -> Datagram:
        """Wait for the next datagram routed to this connection.

        :raises anyio.EndOfStream: the listener closed.
        :raises anyio.ClosedResourceError: this stream is closed.
        """
        return await self.inbox.get()

    async def send(self, item: Datagram) -> None:
        """Send a datagram through the listener's socket to ``item.address``.

        :raises anyio.BrokenResourceError: the listener closed.
        :raises anyio.ClosedResourceError: this stream is closed.
        """
        if self._closed:
            await anyio.lowlevel.checkpoint()
            raise anyio.ClosedResourceError
        try:
            await self._router.socket.send(item)
        except anyio.ClosedResourceError as exc:
            raise anyio.BrokenResourceError from exc

    def update_connection_ids(self, connection_ids: Sequence[bytes]) -> None:
        """Route datagrams addressed to these ids (and the original one) here.

        :param connection_ids: the protocol's current ``connection_ids``.
        """
        if not self._closed:
            self._router.update(self, connection_ids)

    async def aclose(self) -> None:
        """Close the stream; the listener forgets the connection.

        The last stream of a closed listener closes its socket.
        """
        if not self._closed:
            self._closed = True
            self._router.forget(self)
            self.inbox.close()
            if self._router.done():
                await self._router.close_socket()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The listener's local address and the client's first address."""
        remote = self._remote_address
        return {
            **self._router.socket.extra_attributes,
            SocketAttribute.remote_address: lambda: remote,
            SocketAttribute.remote_port: lambda: remote[1],
        }


class _Router:
    """The routing table of a :class:`QUICListener` (see the module docstring)."""

    def __init__(
        self,
        udp_socket: UnreliableObjectStream[Datagram],
        connection_id_length: int,
        supported_versions: Sequence[int],
        queue_size: int,
    ) -> None:
        self.socket = udp_socket
        self.connection_id_length = connection_id_length
        self.supported_versions = tuple(supported_versions)
        self.queue_size = queue_size
        self.routes: dict[bytes, _RoutedQUICStream] = {}
        # The streams open, whatever ids they hold.
        self.streams: set[_RoutedQUICStream] = set()
        # No new connections (the listener was closed).
        self.accepting = True
        # No more datagrams for anyone (the reading loop is over).
        self.closed = False
        self._socket_closed = False
        # Imported here: the HTTP/3 package loads aioquic, which only QUIC
        # listeners need, so importing hcore_io stays light.
        from hcore.protocols import http3

        self._parse = http3.parse_datagram_route
        self._build_version_negotiation = http3.build_version_negotiation

    def route(
        self, datagram: Datagram
    ) -> tuple[_RoutedQUICStream | None, Datagram | None]:
        """Deliver one received datagram.

        :return: the stream it started, if any, and the reply to send, if any.
        """
        header = self._parse(
            datagram.data, self.connection_id_length, self.supported_versions
        )
        if header.drop:
            return None, None
        stream = self.routes.get(header.destination_connection_id)
        if stream is not None:
            self._deliver(stream, datagram)
            return None, None
        if not self.accepting:
            # Closed listener: only the connections it has are served.
            return None, None
        if header.needs_version_negotiation:
            reply = self._build_version_negotiation(header, self.supported_versions)
            return None, Datagram(reply, datagram.address)
        if (
            not header.is_initial
            # RFC 9000 §7.2: a client's first destination id has 8 bytes or more.
            or len(header.destination_connection_id) < _MIN_INITIAL_CONNECTION_ID
        ):
            return None, None
        stream = _RoutedQUICStream(
            self,
            header.destination_connection_id,
            datagram.address,
            self.queue_size,
        )
        self.routes[header.destination_connection_id] = stream
        self.streams.add(stream)
        self._deliver(stream, datagram)
        return stream, None

    def _deliver(self, stream: _RoutedQUICStream, datagram: Datagram) -> None:
        if not stream.inbox.put_nowait(datagram):
            _logger.debug("QUIC connection queue full, datagram dropped")

    def update(self, stream: _RoutedQUICStream, ids: Iterable[bytes]) -> None:
        """Make ``ids`` (plus the original id) the ids routed to ``stream``."""
        if self.closed:
            return
        wanted = {*ids, stream.original_connection_id}
        for cid in stream.connection_ids - wanted:
            if self.routes.get(cid) is stream:
                del self.routes[cid]
        for cid in list(wanted):
            # Never take an id another live connection holds.
            if self.routes.setdefault(cid, stream) is not stream:
                wanted.discard(cid)
        stream.connection_ids = wanted

    def forget(self, stream: _RoutedQUICStream) -> None:
        """Remove every route to ``stream``."""
        for cid in stream.connection_ids:
            if self.routes.get(cid) is stream:
                del self.routes[cid]
        stream.connection_ids = set()
        self.streams.discard(stream)

    def close_all(self) -> None:
        """End every stream's queue: their receivers see end of stream."""
        self.closed = True
        for stream in self.streams:
            stream.inbox.end()
        self.routes.clear()
        self.streams.clear()

    def done(self) -> bool:
        """Whether the socket may close: not accepting, and no stream open."""
        return not self.accepting and not self.streams

    async def close_socket(self) -> None:
        """Close the socket (once), even in a cancelled scope."""
        if not self._socket_closed:
            self._socket_closed = True
            with anyio.CancelScope(shield=True):
                await self.socket.aclose()


class QUICListener(Listener[QUICStream]):
    """Routes the datagrams of one socket to one :class:`QUICStream` per connection.

    :param udp_socket: an unconnected datagram socket (sends go to each
        datagram's address, receives tell the source); the listener owns it.
    :param connection_id_length: the length of the ids the server's QUIC
        protocol issues (short headers do not state it).
    :param supported_versions: the QUIC versions to accept; others are
        answered with Version Negotiation.
    :param queue_size: datagrams queued per connection before more are
        dropped.
    """

    def __init__(
        self,
        udp_socket: UnreliableObjectStream[Datagram],
        *,
        connection_id_length: int,
        supported_versions: Sequence[int],
        queue_size: int = 256,
    ) -> None:
        self._router = _Router(
            udp_socket, connection_id_length, supported_versions, queue_size
        )
        self._closed = False

    async def serve(
        self,
        handler: Callable[[QUICStream], Any],
        task_group: TaskGroup | None = None,
    ) -> None:
        """Read the socket and call ``handler(stream)`` for each new connection.

        Returns once the socket is closed (after :meth:`aclose`, when the
        last connection is over) or fails; every connection's stream then
        sees end of stream.

        :param handler: the connection handler, started in a new task.
        :param task_group: where to start the handlers; by default a task
            group that this call waits for.
        """
        if task_group is None:
            async with anyio.create_task_group() as own_group:
                await self._serve(handler, own_group)
        else:
            await self._serve(handler, task_group)

    async def _serve(
        self, handler: Callable[[QUICStream], Any], task_group: TaskGroup
    ) -> None:
        udp_socket = self._router.socket
        try:
            # Ends when the socket is closed (by aclose) or breaks.
            while True:
                try:
                    datagrams = await receive_datagrams(udp_socket)
                except (
                    anyio.ClosedResourceError,
                    anyio.BrokenResourceError,
                    anyio.EndOfStream,
                ):
                    return
                except OSError as exc:
                    # An ICMP error reported on the shared socket: not fatal.
                    _logger.debug("QUIC listener socket error ignored: %s", exc)
                    continue
                # A batch is what one wake-up of the socket brought.
                for datagram in datagrams:
                    stream, reply = self._router.route(datagram)
                    if reply is not None:
                        try:
                            await udp_socket.send(reply)
                        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                            return
                    if stream is not None:
                        task_group.start_soon(handler, stream)
        finally:
            self._router.close_all()
            if self._closed:
                await self._router.close_socket()

    async def aclose(self) -> None:
        """Stop accepting connections; those accepted carry on.

        New connections are dropped from now on.  The socket stays open for
        the connections already accepted and is closed with the last of
        their streams (at once if there is none); :meth:`serve` returns then.
        """
        if not self._closed:
            self._closed = True
            self._router.accepting = False
            if self._router.done():
                await self._router.close_socket()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The socket's attributes: ``SocketAttribute.local_address`` above all."""
        return self._router.socket.extra_attributes
