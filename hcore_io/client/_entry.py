"""The pool's record of one connection, and the idle-socket check."""

from __future__ import annotations

import select

import anyio
from anyio.abc import SocketAttribute

from hcore_io.client._metrics import ConnectionMetrics
from hcore_io.client._models import Origin
from hcore_io.connections import HTTPConnection

__all__ = ("PoolEntry", "looks_closed")


def looks_closed(connection: HTTPConnection) -> bool:
    """Whether an idle HTTP/1.1 connection's socket became readable.

    Idle, the server has nothing to say: readable means it closed (EOF) or
    broke the protocol.  Streams with no socket (memory) cannot tell.
    """
    sock = connection.extra(SocketAttribute.raw_socket, None)
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
        #: Set once connecting ended, either way.
        self.connected = anyio.Event()
        #: Set when the server's first bytes arrive.
        self.received = anyio.Event()
        self.active = 0
        self.opening = 0
        self.idle_since = now
        #: Requests whose response ended on this connection.
        self.served = 0
