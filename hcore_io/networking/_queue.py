"""A small bounded queue for the backends' internal hand-offs.

AnyIO's memory object streams would do, but they warn when garbage
collected unclosed, and the queues here belong to objects (listeners,
datagram sockets) whose users may legitimately drop them.  This queue has
one producer side and one consumer side, each closed independently.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel

__all__ = ("Queue",)

_T = TypeVar("_T")


class Queue(Generic[_T]):
    """A bounded FIFO between tasks of one event loop.

    :param capacity: items held before :meth:`put` waits and
        :meth:`put_nowait` refuses.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: deque[_T] = deque()
        #: No more items will be put; ``get`` ends once the queue is empty.
        self.ended = False
        #: The consumer is gone; puts fail and items are discarded.
        self.closed = False
        self._changed: anyio.Event | None = None

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def put_nowait(self, item: _T) -> bool:
        """Add an item if there is room.

        :return: whether the item was added.
        :raises anyio.BrokenResourceError: the consumer side is closed.
        :raises anyio.ClosedResourceError: the producer side has ended.
        """
        if self.closed:
            raise anyio.BrokenResourceError
        if self.ended:
            raise anyio.ClosedResourceError
        if len(self._items) >= self._capacity:
            return False
        self._items.append(item)
        self._notify()
        return True

    async def put(self, item: _T) -> None:
        """Add an item, waiting for room.

        :raises anyio.BrokenResourceError: the consumer side is closed.
        :raises anyio.ClosedResourceError: the producer side has ended.
        """
        await anyio.lowlevel.checkpoint()
        # Each wake-up follows a change; bounded by the consumer's progress.
        while not self.put_nowait(item):
            await self._wait()

    def get_nowait(self) -> _T | None:
        """Take the next item if there is one.

        :raises anyio.ClosedResourceError: the consumer side is closed.
        :raises anyio.EndOfStream: the producer ended and the queue is empty.
        """
        if self.closed:
            raise anyio.ClosedResourceError
        if self._items:
            item = self._items.popleft()
            self._notify()
            return item
        if self.ended:
            raise anyio.EndOfStream
        return None

    async def get(self) -> _T:
        """Take the next item, waiting for one.

        :raises anyio.ClosedResourceError: the consumer side is closed.
        :raises anyio.EndOfStream: the producer ended and the queue is empty.
        """
        await anyio.lowlevel.checkpoint()
        # Each wake-up follows a change; bounded by the producer's progress.
        while (item := self.get_nowait()) is None:
            await self._wait()
        return item

    def end(self) -> None:
        """Close the producer side: ``get`` ends once the queue is empty."""
        self.ended = True
        self._notify()

    def close(self) -> list[_T]:
        """Close the consumer side.

        :return: the items that were never taken.
        """
        self.closed = True
        left = list(self._items)
        self._items.clear()
        self._notify()
        return left
