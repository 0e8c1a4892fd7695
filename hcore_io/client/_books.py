"""The pool's books: its entries per origin, and how a connection is taken.

Theory of operation
-------------------
The books (the entries, one per connection, and the counters) are changed
only by code that awaits nothing in between, so each change is atomic (the
event loop runs one task at a time) and needs no lock: a lock held across no
await is never contended, and taking it would only cost time on every
request.  Network work (connecting, closing, requests) happens between such
changes, and every change a waiting task may care about (a connection
opened, failed or closed; a stream slot freed) wakes every waiting task
(each waits on an event of its own, queued in ``_waiters``).  An HTTP/1.1
connection given back idle is instead handed over to the first task
waiting for its origin that may take it, if there is one, taken on its
behalf as it would take it itself: waking them all would wake one to take
it and the others to go back to sleep, a loop turn each for nothing on
every request of a busy pool, and a task just done with a request could
take it again first.  A task handed a connection that it cannot use any
more (cancelled meanwhile) gives it back the same way.

A request or a lease *acquires* an entry: in one such step it sweeps out idle
connections that expired (keep-alive timeout, ``Connection: close``,
GOAWAY, request budget spent, or an HTTP/1.1 socket that became readable
while idle: the server closed it), then takes

* an idle HTTP/1.1 connection of its origin;
* an HTTP/2 or HTTP/3 connection of its origin whose ``is_available()``
  says the server's stream limit is not reached (not when HTTP/1.1 was
  asked for).  Stream openings on one connection are serialized
  (``opening``) so that ``is_available()`` is read after the previous
  request took its slot;
* else, if a connection of the origin that may turn out multiplexed is
  being opened, it waits for it;
* else it reserves a new entry if the limits allow (closing an idle
  connection of another origin to make room), and opens it outside the lock;
* else it waits for a change, within the pool timeout (:exc:`PoolTimeout`).

What runs on the entry gives it back with :meth:`PoolBooks.release`.  A
response body dropped without being read or closed is caught by a finalizer
when the garbage collector takes it: it warns (``ResourceWarning``) and
queues the exchange, which the next task that acquires an entry releases
(resetting the stream; on HTTP/1.1 that closes the connection, half-read).
Nothing is done from the finalizer itself but appending to that queue and
waking the waiting tasks, since it may run at any allocation, even inside
the pool's own critical sections.

Which connection a new entry gets (TCP or QUIC, which versions) is the
pool's choice: :meth:`PoolBooks._new_entry` and :meth:`PoolBooks._open`.
"""

from __future__ import annotations

import warnings
from abc import ABCMeta, abstractmethod
from asyncio import AbstractEventLoop
from collections import deque

import anyio

from hcore import HCoreError
from hcore_io._exceptions import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    PoolTimeout,
)
from hcore_io.client._altsvc import AltSvcCache
from hcore_io.client._clock import now as _now
from hcore_io.client._clock import running_loop
from hcore_io.client._entry import PoolEntry, PoolWaiter, looks_closed
from hcore_io.client._exchange import QUICUnconfirmed
from hcore_io.client._metrics import ConnectionState
from hcore_io.client._models import Origin, Timeouts
from hcore_io.connections import HTTPConnection, HTTPStream

__all__ = ("PoolBooks",)

# ConnectionState's members, looked up once: an enum member costs a look-up
# through its metaclass on every access, and the books set a few per request.
_ACTIVE = ConnectionState.ACTIVE
_CLOSED = ConnectionState.CLOSED
_CONNECTING = ConnectionState.CONNECTING
_IDLE = ConnectionState.IDLE


class PoolBooks(metaclass=ABCMeta):
    """The entries of a pool and their accounting (see the module doc).

    :param max_connections: connections open (or opening) at once, in all.
    :param max_connections_per_host: connections open at once per origin.
    :param keep_alive_timeout: seconds an idle connection is kept.
    :param max_requests_per_connection: requests a connection serves
        before it is retired.
    :param alt_svc: the HTTP/3 alternatives followed, if any.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        max_connections_per_host: int,
        keep_alive_timeout: float,
        max_requests_per_connection: int,
        alt_svc: AltSvcCache | None,
    ) -> None:
        self._max_connections = max_connections
        self._max_per_host = max_connections_per_host
        self._keep_alive = keep_alive_timeout
        self._max_requests = max_requests_per_connection
        self._alt_svc = alt_svc
        # The tasks waiting for a change, oldest first.
        self._waiters: deque[PoolWaiter] = deque()
        # The asyncio loop the last of them waited on (see _clock).
        self._loop: AbstractEventLoop | None = None
        self._entries: list[PoolEntry] = []
        self._created = 0
        self._closed_count = 0
        self._requests = 0
        self._closed = False
        # Exchanges whose response body was dropped unread and unclosed.
        self._abandoned: deque[tuple[PoolEntry, HTTPStream, float]] = deque()

    @abstractmethod
    def _new_entry(
        self, origin: Origin, now: float, avoid_quic: bool, http1_only: bool
    ) -> PoolEntry:
        """A new entry for ``origin``: which transport and versions it gets."""

    @abstractmethod
    async def _open(self, entry: PoolEntry) -> HTTPConnection:
        """Open the connection of a new entry."""

    # -- acquiring -------------------------------------------------------------

    def _notify(self) -> None:
        """Wake every waiting task."""
        if self._waiters:
            waiters, self._waiters = self._waiters, deque()
            for waiter in waiters:
                waiter.wake()

    def _hand_over(self, entry: PoolEntry, now: float) -> bool:
        """Give an idle HTTP/1.1 connection to the first task waiting for it.

        :return: whether one took it; if not, the caller wakes them all
            (one of another origin may close it to make room for its own).
        """
        # RFC 7838 §2: while an alternative is known, new requests use it
        # (see _pick), unless they avoid QUIC.
        prefer_quic = (
            self._alt_svc is not None
            and self._alt_svc.lookup(entry.origin, now) is not None
        )
        origin = entry.origin
        for waiter in self._waiters:
            if (waiter.origin is origin or waiter.origin == origin) and (
                waiter.avoid_quic or not prefer_quic
            ):
                self._waiters.remove(waiter)
                self._take(entry, new=False)
                waiter.entry = entry
                waiter.wake()
                return True
        return False

    @staticmethod
    def _take(entry: PoolEntry, *, new: bool) -> None:
        entry.active += 1
        entry.opening += 1
        entry.metrics.state = _CONNECTING if new else _ACTIVE

    def _give_back(self, entry: PoolEntry) -> None:
        """Undo :meth:`_take` of a connection handed over but not used."""
        entry.opening -= 1
        entry.active -= 1
        if entry.active == 0:
            now = _now()
            entry.idle_since = now
            if entry.metrics.state is not _CLOSED:
                entry.metrics.state = _IDLE
            # An expired one is left for the next _acquire to sweep out.
            if not self._expired(entry, now) and self._hand_over(entry, now):
                return
        self._notify()

    def _expired(self, entry: PoolEntry, now: float) -> bool:
        return entry.expired(now, self._max_requests, self._keep_alive)

    def _pick(
        self,
        origin: Origin,
        now: float,
        avoid_quic: bool,
        stale: list[PoolEntry],
        http1_only: bool,
    ) -> tuple[PoolEntry | None, bool, int]:
        """Find a usable entry; say if one may soon be, and the origin's count.

        Idle HTTP/1.1 connections found closed by the server are moved from
        the books to ``stale``, for the caller to close.  ``http1_only``
        takes only HTTP/1.1 connections (and waits for no other).  Run
        right after :meth:`_acquire`'s sweep (no await between), so an idle
        HTTP/1.1 entry left passed :meth:`_expired`: only its socket is asked.
        """
        wait = False
        picked: PoolEntry | None = None
        # RFC 7838 §2: while an alternative is known, new requests use it.
        prefer_quic = (
            not avoid_quic
            and self._alt_svc is not None
            and self._alt_svc.lookup(origin, now) is not None
        )
        same = 0
        for entry in self._entries:
            # Origins come from a cache (URL parsing): mostly one object.
            if entry.origin is not origin and entry.origin != origin:
                continue
            same += 1
            if (avoid_quic and entry.quic) or (
                self._alt_svc is not None and entry.quic is not prefer_quic
            ):
                continue
            connection = entry.connection
            if http1_only and (
                entry.may_multiplex if connection is None else entry.multiplexed
            ):
                continue
            if connection is None:
                wait = wait or entry.may_multiplex
                continue
            if not entry.multiplexed:
                if entry.active == 0:
                    # Swept just before (see above): only the socket is left.
                    if not looks_closed(entry):
                        picked = entry
                        break
                    stale.append(entry)
                    same -= 1
                continue
            if connection.has_expired() or entry.metrics.requests >= self._max_requests:
                continue
            if connection.is_available():
                if not entry.opening:
                    picked = entry
                    break
                wait = True
            elif not entry.received.is_set():
                # The limit assumed before the server's SETTINGS (RFC
                # 9113 §6.5.2: 100 by h2's default) may be raised by them.
                wait = True
        for closed in stale:
            if closed in self._entries:
                self._entries.remove(closed)
        return picked, wait and picked is None, same

    def _make_room(self, same: int) -> tuple[bool, list[PoolEntry]]:
        """Whether one more fits beside ``same`` of its origin's; evict if need be."""
        if same >= self._max_per_host:
            return False, []
        if len(self._entries) < self._max_connections:
            return True, []
        for entry in self._entries:
            if entry.active == 0 and entry.connection is not None:
                self._entries.remove(entry)
                return True, [entry]
        return False, []

    async def _acquire(
        self,
        origin: Origin,
        timeouts: Timeouts,
        avoid_quic: bool,
        http1_only: bool = False,
    ) -> PoolEntry:
        """Take an entry for ``origin`` (opening its connection if new).

        :raises hcore_io.PoolTimeout: no connection became free in time.
        :raises hcore_io.ConnectError: the connection could not be opened.
        """
        timeout = timeouts.pool
        deadline = None if timeout is None else _now() + timeout
        # Bounded: each turn either returns or waits for the pool to change,
        # and the deadline (if any) ends the waiting.
        while True:
            if self._abandoned:
                await self._reap()
            new = False
            if self._closed:
                raise ConnectionClosed("the pool is closed")
            now = _now()
            to_close = [
                e for e in self._entries if not e.active and self._expired(e, now)
            ]
            for spent in to_close:
                self._entries.remove(spent)
            entry, wait, same = self._pick(
                origin, now, avoid_quic or http1_only, to_close, http1_only
            )
            if entry is None and not wait:
                room, evicted = self._make_room(same)
                to_close += evicted
                if room:
                    entry = self._new_entry(origin, now, avoid_quic, http1_only)
                    self._entries.append(entry)
                    new = True
            if entry is not None:
                self._take(entry, new=new)
            if to_close:
                self._notify()
            if entry is not None:
                for spent in to_close:
                    await self._close_connection(spent)
                if new:
                    await self._connect(entry, timeouts.connect)
                return entry
            # Queued before anything is awaited: no change is missed.
            loop = self._loop = running_loop(self._loop)
            waiter = PoolWaiter(origin, avoid_quic or http1_only, loop)
            self._waiters.append(waiter)
            try:
                for spent in to_close:
                    await self._close_connection(spent)
                remaining = None if deadline is None else deadline - _now()
                if remaining is None:  # no pool timeout: no cancel scope
                    await waiter.wait()
                elif remaining <= 0:
                    raise PoolTimeout(f"no connection to {origin} became free in time")
                else:
                    with anyio.move_on_after(remaining):
                        await waiter.wait()
            except BaseException:
                if waiter.entry is not None:
                    # Leaving without the connection handed over to it.
                    self._give_back(waiter.entry)
                raise
            finally:
                # Still queued if it timed out, or was woken by a finalizer
                # (asked first: a raised ValueError costs more than the look).
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if waiter.entry is not None:
                return waiter.entry

    async def _connect(self, entry: PoolEntry, timeout: float | None) -> None:  # noqa: ASYNC109
        origin = entry.origin
        try:
            try:
                with anyio.fail_after(timeout):
                    connection = await self._open(entry)
            except TimeoutError as exc:
                if isinstance(exc, ConnectTimeout):
                    raise
                raise ConnectTimeout(f"connecting to {origin} timed out") from exc
        except BaseException as exc:
            # Nothing awaited: a task being cancelled books the failure too,
            # so that the entry does not stay booked as connecting for good,
            # with the tasks of its origin waiting for it (HTTP/2, HTTP/3)
            # or its place taken from the connection limits (HTTP/1.1).
            if entry in self._entries:
                self._entries.remove(entry)
            entry.metrics.state = _CLOSED
            entry.connected.set()
            self._notify()
            if entry.via_alt_svc and isinstance(exc, ConnectError | ConnectTimeout):
                if self._alt_svc is not None:
                    self._alt_svc.mark_broken(origin, _now())
                raise QUICUnconfirmed(
                    f"HTTP/3 to {origin} failed: {exc}", via_alt_svc=True
                ) from exc
            raise
        # Booked at once (nothing awaited): a cancellation arriving later is
        # the exchange's to handle (it releases the entry), and the
        # connection is neither lost unclosed nor waited for forever.
        entry.connection = connection
        entry.multiplexed = connection.multiplexed
        entry.metrics.http_version = connection.http_version
        entry.metrics.state = _ACTIVE
        self._created += 1
        entry.connected.set()
        self._notify()
        if entry not in self._entries:
            # The pool was closed while this connection was being opened.
            await connection.aclose()
            raise ConnectionClosed("the pool is closed")

    async def _discard(self, entry: PoolEntry, *, broken_alternative: bool) -> None:
        """Drop an entry whose connection failed."""
        if broken_alternative and entry.via_alt_svc and self._alt_svc is not None:
            self._alt_svc.mark_broken(entry.origin, _now())
        if entry in self._entries:
            self._entries.remove(entry)
        self._notify()
        await self._close_connection(entry)

    async def _close_connection(self, entry: PoolEntry) -> None:
        if entry.metrics.state is _CLOSED:
            return
        entry.metrics.state = _CLOSED
        connection = entry.connection
        if connection is not None:
            self._closed_count += 1
            with anyio.CancelScope(shield=True):
                try:
                    await connection.aclose()
                except HCoreError:
                    pass

    async def _drop_idle(self, origin: Origin) -> None:
        """Close the idle HTTP/1.1 connections of an origin."""
        idle = [
            entry
            for entry in self._entries
            if entry.origin == origin
            and not entry.active
            and entry.connection is not None
            and not entry.multiplexed
        ]
        for entry in idle:
            self._entries.remove(entry)
        self._notify()
        for entry in idle:
            await self._close_connection(entry)

    # -- used by the exchanges and leases ---------------------------------------

    def opened_stream(self, entry: PoolEntry) -> None:
        """An exchange got its stream (or failed to): the next may open one."""
        entry.opening -= 1
        if entry.connection is None or entry.multiplexed:
            # Only _pick's look at a multiplexed connection waits for this.
            self._notify()

    async def release(self, entry: PoolEntry, started: float, failed: bool) -> None:
        """An exchange ended: book it and close the connection if it is spent."""
        now = _now()
        metrics = entry.metrics
        metrics.completed += 1
        metrics.total_request_time += now - started
        if failed:
            metrics.errors += 1
        else:
            entry.served += 1
        to_close: list[PoolEntry] = []
        entry.active -= 1
        idle = False
        if entry.active == 0:
            entry.idle_since = now
            if metrics.state is not _CLOSED:
                metrics.state = _IDLE
            if self._expired(entry, now):
                if entry in self._entries:
                    self._entries.remove(entry)
                    to_close.append(entry)
            else:
                idle = (
                    entry.connection is not None
                    and not entry.multiplexed
                    and entry in self._entries
                )
        if not idle or not self._hand_over(entry, now):
            self._notify()
        for spent in to_close:
            await self._close_connection(spent)

    def abandoned(
        self, entry: PoolEntry, stream: HTTPStream, started: float, url: str
    ) -> None:
        """A response body was garbage-collected unread and unclosed.

        Called by its finalizer, at any point of any task: it only warns,
        queues the exchange for :meth:`_reap` and wakes the tasks waiting
        for a connection (so that a full pool does not wait for nothing).
        """
        warnings.warn(
            f"the response from {url} was neither read to its end nor closed; "
            "its stream is reset and its connection given back to the pool "
            "(use 'async with client.stream(...)' or 'await response.aclose()')",
            ResourceWarning,
            stacklevel=2,
        )
        self._abandoned.append((entry, stream, started))
        # Set, not removed from the queue (the finalizer may run while it is
        # being changed): each task removes its own once woken.
        for waiter in tuple(self._waiters):
            try:
                waiter.wake()
            except RuntimeError:
                # Collected after its event loop ended: nobody waits any more.
                pass

    async def _reap(self) -> None:
        """Release the exchanges of abandoned responses (see the module doc)."""
        with anyio.CancelScope(shield=True):
            # Bounded by the responses collected so far.
            while self._abandoned:
                entry, stream, started = self._abandoned.popleft()
                try:
                    await stream.aclose()
                except HCoreError:
                    pass
                await self.release(entry, started, failed=True)
