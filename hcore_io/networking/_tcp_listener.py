"""The TCP listener of :class:`SystemNetworking`, with or without TLS.

Theory of operation: :meth:`TCPListener.serve` runs one accept loop per
listening socket (a host name may bind IPv4 and IPv6).  Each accepted
socket gets ``TCP_NODELAY`` and is handed to a new task (a light one on
asyncio: see ``_connection_tasks``); for TLS that task
first does the handshake under a time limit, so a slow or silent client
only ever holds up its own task, never the accept loop.  A failed or late
handshake closes that connection and is logged at debug level; it is not
raised out of :meth:`serve`.  Accept errors from resource exhaustion
(``EMFILE`` and friends) pause the loop briefly instead of ending it.
:meth:`serve` returns once the listener is closed.

Accepted TLS streams are AnyIO ``TLSStream`` objects (wrapped so that
``ssl.SSLError`` reads as :exc:`anyio.BrokenResourceError`) made with
``standard_compatible=False``: HTTP delimits its own messages, so an EOF
without ``close_notify`` reads as end of stream and closing does not wait
for the peer's ``close_notify``.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import ByteStream, Listener, SocketAttribute, SocketListener, TaskGroup
from anyio.streams.tls import TLSStream

from hcore_io.networking._connection_tasks import ConnectionTasks
from hcore_io.networking._tls import TLSByteStream

__all__ = ("TCPListener", "set_nodelay")

_logger = logging.getLogger("hcore_io.networking")

# Accept fails this way when the process or system runs out of something;
# waiting a little lets connections close (as Trio's serve_listeners does).
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_RESOURCE_PAUSE = 0.1


def set_nodelay(stream: ByteStream) -> None:
    """Turn Nagle's algorithm off on a socket stream (no-op otherwise).

    :param stream: an AnyIO stream, possibly without a raw socket.
    """
    raw_socket = stream.extra(SocketAttribute.raw_socket, None)
    if raw_socket is not None:
        try:
            raw_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            # The peer may already have reset the connection.
            _logger.debug("TCP_NODELAY not set: %s", exc)


class TCPListener(Listener[ByteStream]):
    """Accepts TCP connections, optionally completing a TLS handshake on each.

    :param listeners: the bound, listening sockets.
    :param ssl_context: a server context for TLS, or ``None`` for plain TCP.
    :param handshake_timeout: seconds a client gets to finish the TLS
        handshake.
    """

    def __init__(
        self,
        listeners: Sequence[SocketListener],
        *,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        self._listeners = tuple(listeners)
        self._ssl_context = ssl_context
        self._handshake_timeout = handshake_timeout

    async def serve(
        self,
        handler: Callable[[ByteStream], Any],
        task_group: TaskGroup | None = None,
    ) -> None:
        """Call ``handler(stream)`` in a new task for each connection.

        Returns once the listener is closed.

        :param handler: the connection handler.
        :param task_group: where to start the handlers; by default a task
            group that this call waits for.
        """
        async with anyio.create_task_group() as accept_group:
            tasks = ConnectionTasks(accept_group if task_group is None else task_group)
            if self._ssl_context is not None:
                handler = functools.partial(self._handshake, handler)
            for listener in self._listeners:
                accept_group.start_soon(self._accept_loop, listener, handler, tasks)

    async def _accept_loop(
        self,
        listener: SocketListener,
        handler: Callable[[ByteStream], Any],
        tasks: ConnectionTasks,
    ) -> None:
        # Ends when the listener is closed.
        while True:
            try:
                stream = await listener.accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError as exc:
                _logger.debug("accept failed: %s", exc)
                if exc.errno in _RESOURCE_ERRNOS:
                    await anyio.sleep(_RESOURCE_PAUSE)
                continue
            set_nodelay(stream)
            tasks.start_soon(handler, stream)

    async def _handshake(
        self, handler: Callable[[ByteStream], Any], stream: ByteStream
    ) -> None:
        assert self._ssl_context is not None
        try:
            with anyio.fail_after(self._handshake_timeout):
                tls_stream = await TLSStream.wrap(
                    stream,
                    server_side=True,
                    ssl_context=self._ssl_context,
                    standard_compatible=False,
                )
        except (
            OSError,  # TimeoutError from fail_after included
            ssl.SSLError,
            anyio.BrokenResourceError,
            anyio.EndOfStream,
        ) as exc:
            peer = stream.extra(SocketAttribute.remote_address, None)
            _logger.debug("TLS handshake with %s failed: %r", peer, exc)
            await anyio.aclose_forcefully(stream)
            return
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        await handler(TLSByteStream(tls_stream))

    async def aclose(self) -> None:
        """Close the listening sockets; :meth:`serve` then returns."""
        for listener in self._listeners:
            await listener.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The first socket's attributes: ``SocketAttribute.local_address``..."""
        return self._listeners[0].extra_attributes
