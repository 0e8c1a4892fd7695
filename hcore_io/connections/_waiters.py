"""Parking lot for the tasks that wait on one connection.

A task parks under a key (its stream, the accept queue, flow-control credit
for a stream, ...) and is woken when something happens under that key.  The
connection has no reader task of its own, so one more wake-up exists: the
*baton*.  When the task that was reading stops reading, it passes the baton
to one parked task, which wakes up, finds nobody reading, and reads.  A task
woken with the baton that is cancelled before it can read passes it on, so
the reader role is never lost while someone waits.
"""

from __future__ import annotations

from collections.abc import Hashable

import anyio

__all__ = ("Waiters",)


class Waiters:
    """Tasks parked by key, with targeted wake-ups and a baton."""

    def __init__(self) -> None:
        self._by_key: dict[Hashable, list[anyio.Event]] = {}
        self._baton: anyio.Event | None = None

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def keys(self) -> list[Hashable]:
        """The keys some task waits under (a copy, safe to wake while iterating)."""
        return list(self._by_key)

    async def park(self, key: Hashable) -> None:
        """Wait until :meth:`wake` of ``key``, :meth:`wake_all` or the baton."""
        event = anyio.Event()
        self._by_key.setdefault(key, []).append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                if self._baton is event:
                    self._baton = None
                    self.pass_baton()
            else:
                parked = self._by_key.get(key)
                if parked is not None:
                    parked.remove(event)
                    if not parked:
                        del self._by_key[key]
            raise
        if self._baton is event:
            self._baton = None

    def wake(self, key: Hashable) -> None:
        """Wake every task parked under ``key``."""
        for event in self._by_key.pop(key, ()):
            event.set()

    def wake_all(self) -> None:
        """Wake every parked task."""
        parked, self._by_key = self._by_key, {}
        for events in parked.values():
            for event in events:
                event.set()

    def pass_baton(self) -> None:
        """Wake one parked task to take over reading, unless one is already woken."""
        if self._baton is not None or not self._by_key:
            return
        key = next(iter(self._by_key))
        parked = self._by_key[key]
        event = parked.pop(0)
        if not parked:
            del self._by_key[key]
        self._baton = event
        event.set()
