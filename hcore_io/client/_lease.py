"""A connection leased from the pool, for a stream of the caller's own.

:meth:`~hcore_io.client.ConnectionPool.lease` takes a connection as a
request would (limits, version choice, reuse) and hands it to a *start*
function that opens a stream on it, with a request head that may depend on
the connection's HTTP version (a WebSocket's ``Upgrade`` or extended
CONNECT).  The pool books the lease as a request: it holds the entry (a
stream slot of an HTTP/2 or HTTP/3 connection, or a whole HTTP/1.1 one)
until the lease ends.  :class:`PooledConnection` is what the start function
and the ``async with`` block get.

A new HTTP/3 connection found through ``Alt-Svc`` is watched while the
start function runs: if the server says nothing within the pool's
``quic_connect_timeout``, it is closed (which ends the start function's
waits) and the lease falls back to TCP (RFC 7838 §2.4).  If ``start``
fails on a reused connection before it got anything (the server closed it
meanwhile: a stale connection), it is called once more on a new one, as a
request would be sent again (RFC 9112 §9.3.1).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import anyio

from hcore import HCoreError
from hcore_io._exceptions import (
    ConnectionClosed,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
)
from hcore_io.client._clock import now
from hcore_io.client._entry import PoolEntry
from hcore_io.client._exchange import QUICUnconfirmed, run_watched
from hcore_io.client._models import Origin, Timeouts
from hcore_io.connections import HTTPConnection

if TYPE_CHECKING:
    from hcore_io.client._books import PoolBooks

__all__ = ("PooledConnection", "run_watched", "start_lease")

T = TypeVar("T")

# How often wait_for_server() reads the connection.
_READ_POLL = 0.05
# Attempts of one lease: a stale-connection retry and an HTTP/3 fallback.
_MAX_ATTEMPTS = 3


class PooledConnection:
    """A connection of a :class:`~hcore_io.client.ConnectionPool`, leased.

    Made by :meth:`ConnectionPool.lease <hcore_io.client.ConnectionPool.lease>`;
    valid until its ``async with`` block ends.  Open streams on
    :attr:`connection`; do not close it (:meth:`retire` it).

    :param entry: the pool's record of the connection.
    """

    def __init__(self, entry: PoolEntry) -> None:
        connection = entry.connection
        assert connection is not None
        self._entry = entry
        self._connection = connection
        self._reused = entry.served > 0
        self._failed = False
        self._retired = False

    @property
    def connection(self) -> HTTPConnection:
        """The connection: open the lease's stream on it."""
        return self._connection

    @property
    def http_version(self) -> str:
        """``"1.1"``, ``"2"`` or ``"3"``."""
        return self._connection.http_version

    @property
    def reused(self) -> bool:
        """Whether the connection served earlier requests.

        A failure on a reused connection before any response byte may be
        a stale one (the server closed it meanwhile): the pool retries.
        """
        return self._reused

    @property
    def failed(self) -> bool:
        """Whether the lease counts as failed (see :meth:`fail`)."""
        return self._failed

    @property
    def retired(self) -> bool:
        """Whether the connection is closed when the lease ends."""
        return self._retired

    def fail(self) -> None:
        """Count the lease as failed in the connection's metrics (``errors``).

        A lease whose block raises is counted failed without this.
        """
        self._failed = True

    def retire(self) -> None:
        """Close the connection when the lease ends instead of reusing it.

        E.g. an HTTP/1.1 connection after a ``101`` (RFC 9110 §15.2.2):
        it cannot carry requests again.
        """
        self._retired = True

    async def wait_for_server(self, timeout: float | None) -> bool:  # noqa: ASYNC109
        """Read the connection until the server's first bytes arrived.

        On HTTP/2 these are its SETTINGS (RFC 9113 §3.4): what it accepts
        (e.g. extended CONNECT, RFC 8441 §3) is known after them.
        Connection-wide events read meanwhile are dropped (in a pool they
        are nobody's).

        :param timeout: seconds to wait at most (``None``: no limit).
        :return: whether the server's bytes arrived.
        """
        received = self._entry.received
        with anyio.move_on_after(timeout):
            # Bounded by the server's first bytes, or the timeout.
            while not received.is_set():
                try:
                    await self._connection.receive_event(timeout=_READ_POLL)
                except ReadTimeout:
                    continue
                except HCoreError:
                    break
        return received.is_set()


async def start_lease(
    books: PoolBooks,
    origin: Origin,
    start: Callable[[PooledConnection], Awaitable[T]],
    timeouts: Timeouts,
    http1_only: bool,
    quic_timeout: float,
) -> tuple[PooledConnection, float, T]:
    """Take an entry of ``books`` and run ``start`` on it (see the module doc).

    :return: the lease, when it started, and what ``start`` returned.
    :raises hcore_io.ConnectTimeout: HTTP/3 stayed silent, and no fallback.
    """
    avoid_quic = stale_retried = False
    for attempt in range(_MAX_ATTEMPTS):
        last = attempt == _MAX_ATTEMPTS - 1
        leased: PooledConnection | None = None
        try:
            entry = await books._acquire(origin, timeouts, avoid_quic, http1_only)
            entry.metrics.requests += 1
            leased = PooledConnection(entry)
            started = now()
            limit = quic_timeout if entry.via_alt_svc else timeouts.connect
            try:
                try:
                    if entry.quic and not entry.received.is_set() and limit:
                        result = await run_watched(entry, limit, partial(start, leased))
                    else:
                        result = await start(leased)
                finally:
                    # The next may open a stream (see PoolBooks).
                    books.opened_stream(entry)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await books.release(entry, started, failed=True)
                raise
            return leased, started, result
        except QUICUnconfirmed as exc:
            if leased is not None:
                await books._discard(leased._entry, broken_alternative=True)
            if not exc.via_alt_svc or last:
                raise ConnectTimeout(str(exc)) from exc
            # RFC 7838 §2.4: fall back to the origin over TCP.
            avoid_quic = True
        except (ConnectionClosed, ReadError, WriteError):
            # As for a request (RFC 9112 §9.3.1): once, on a new one.
            if leased is None or not leased.reused or last or stale_retried:
                raise
            stale_retried = True
            await books._drop_idle(origin)
    raise AssertionError("unreachable: the last attempt raises")
