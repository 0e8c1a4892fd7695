"""The pool's record of one connection, and the idle-socket check."""

from __future__ import annotations

import select
import socket
from typing import Any

import anyio
from anyio.abc import SocketAttribute

from hcore_io.client._metrics import ConnectionMetrics
from hcore_io.client._models import Origin
from hcore_io.connections import HTTPConnection

__all__ = ("PoolEntry", "looks_closed")

# PoolEntry.raw_socket before it was looked up.
_UNKNOWN: Any = object()


def looks_closed(entry: PoolEntry) -> bool:
    """Whether an idle HTTP/1.1 connection's socket became readable.

    Idle, the server has nothing to say: readable means it closed (EOF) or
    broke the protocol.  Streams with no socket (memory) cannot tell.  The
    socket is looked up once per connection (through the stream wrappers'
    attributes, which costs more than the check itself).
    """
    sock = entry.raw_socket
    if sock is _UNKNOWN:
        connection = entry.connection
        assert connection is not None
        sock = entry.raw_socket = connection.extra(SocketAttribute.raw_socket, None)
    if sock is None:
        return False
    try:
        if sock.fileno() < 0:
            return True
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class PoolEntry:
    """One connection of a pool, with its books (used by the pool only)."""

    def __init__(
        self,
        origin: Origin,
        *,
        quic: bool,
        port: int,
        via_alt_svc: bool,
        may_multiplex: bool,
        now: float,
        http1_only: bool = False,
    ) -> None:
        self.origin = origin
        self.quic = quic
        self.port = port
        self.via_alt_svc = via_alt_svc
        self.may_multiplex = may_multiplex
        #: Opened offering HTTP/1.1 alone (for a lease that asked for it).
        self.http1_only = http1_only
        self.metrics = ConnectionMetrics(str(origin))
        self.connection: HTTPConnection | None = None
        #: The connection's socket (``None`` if it has none), once looked up.
        self.raw_socket: socket.socket | None = _UNKNOWN
        #: Set once connecting ended, either way.
        self.connected = anyio.Event()
        #: Set when the server's first bytes arrive.
        self.received = anyio.Event()
        self.active = 0
        self.opening = 0
        self.idle_since = now
        #: Requests whose response ended on this connection.
        self.served = 0
