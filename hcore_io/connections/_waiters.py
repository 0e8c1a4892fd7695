"""Parking lot for the tasks that wait on one connection.

A task parks under a key (its stream, the accept queue, flow-control credit
for a stream, ...) and is woken when something happens under that key.  The
connection has no reader task of its own, so one more wake-up exists: the
*baton*.  When the task that was reading stops reading, it passes the baton
to one parked task, which wakes up, finds nobody reading, and reads.  A task
woken with the baton that is cancelled before it can read passes it on, so
the reader role is never lost while someone waits.

The connection's write lock is here too: :class:`WriteLock`, taken at once
when free (like AnyIO's ``Lock(fast_acquire=True)``), but released to all
its waiters at once rather than handed to one at a time, and with no waiter
queue while nobody waits (an idle connection keeps none).
"""

from __future__ import annotations

from collections.abc import Hashable

import anyio
import anyio.lowlevel

__all__ = ("Waiters", "WriteLock")


class Waiters:
    """Tasks parked by key, with targeted wake-ups and a baton."""

    __slots__ = ("_baton", "parked")

    def __init__(self) -> None:
        #: The parked tasks' events by key; truthy exactly while a task is
        #: parked (the hot paths ask it rather than the object's truth,
        #: which costs a method call).  Made when a task first parks: an
        #: idle connection has nobody parked, and an empty dict costs 64
        #: bytes each.
        self.parked: dict[Hashable, list[anyio.Event]] | None = None
        self._baton: anyio.Event | None = None

    def __bool__(self) -> bool:
        return bool(self.parked)

    def keys(self) -> list[Hashable]:
        """The keys some task waits under (a copy, safe to wake while iterating)."""
        return [] if self.parked is None else list(self.parked)

    async def park(self, key: Hashable) -> None:
        """Wait until :meth:`wake` of ``key``, :meth:`wake_all` or the baton."""
        event = anyio.Event()
        if self.parked is None:
            self.parked = {}
        self.parked.setdefault(key, []).append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                if self._baton is event:
                    self._baton = None
                    self.pass_baton()
            elif self.parked is not None:
                under_key = self.parked.get(key)
                if under_key is not None:
                    under_key.remove(event)
                    if not under_key:
                        del self.parked[key]
            raise
        if self._baton is event:
            self._baton = None

    def wake(self, key: Hashable) -> None:
        """Wake every task parked under ``key``."""
        if self.parked:
            for event in self.parked.pop(key, ()):
                event.set()

    def wake_all(self) -> None:
        """Wake every parked task."""
        parked, self.parked = self.parked, None
        if not parked:
            return
        for events in parked.values():
            for event in events:
                event.set()

    def pass_baton(self) -> None:
        """Wake one parked task to take over reading, unless one is already woken."""
        by_key = self.parked
        if self._baton is not None or not by_key:
            return
        key = next(iter(by_key))
        under_key = by_key[key]
        event = under_key.pop(0)
        if not under_key:
            del by_key[key]
        self._baton = event
        event.set()


class WriteLock:
    """A lock for the connection's writer, taken at once when free.

    Taking a free lock raises if the task is cancelled but does not yield.
    Releasing it wakes every waiting task at once, and the first to run
    takes it: the holder writes everything the protocol has, the waiters'
    bytes included, so most waiters find nothing left to write and release
    it again without yielding, all within one turn of the event loop.
    (Handing it to one waiter at a time would cost a turn of the loop per
    waiter: under HTTP/2 load, streams queued behind the lock faster than
    it went round.)  One event serves all the waiters of a release, and it
    exists only while someone waits.
    """

    __slots__ = ("_released", "held")

    def __init__(self) -> None:
        #: Whether a task holds the lock (what :meth:`locked` says; the
        #: connection's hot paths read it without the call).
        self.held = False
        self._released: anyio.Event | None = None

    def locked(self) -> bool:
        """Whether a task holds the lock."""
        return self.held

    async def __aenter__(self) -> None:
        await self.acquire()

    async def acquire(self) -> None:
        """Take the lock: at once if it is free, else once it is released."""
        if not self.held:
            # Raises if cancelled, does not yield otherwise: the lock is
            # still free when it returns.
            await anyio.lowlevel.checkpoint_if_cancelled()
            self.held = True
            return
        # Bounded: each round waits for a release; another task can take
        # the lock first only by writing, and each write goes somewhere.
        while self.locked():
            if self._released is None:
                self._released = anyio.Event()
            await self._released.wait()
        self.held = True

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def take_unchecked(self) -> bool:
        """Take the lock if it is free, without checking for a cancellation.

        For a holder whose first step raises a pending cancellation before
        anything is done (the connection's first write; see ``_flush``):
        the check of :meth:`__aenter__` would be a second one.

        :return: whether the lock was free (and is now taken).
        """
        if self.held:
            return False
        self.held = True
        return True

    def release(self) -> None:
        """Release the lock, waking every task that waits for it."""
        self.held = False
        released, self._released = self._released, None
        if released is not None:
            released.set()
