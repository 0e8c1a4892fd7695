"""A clock-free guard against rapid reset (CVE-2023-44487) and its cousins.

Theory of operation: the attack opens streams and resets them at once, so
that the server starts work for each while the concurrency limit never
binds.  Guards elsewhere count resets per second; hcore's protocols never
read a clock, so this one measures time in *streams opened by the peer*.

Each stream the peer opens gets a sequence number.  A stream the peer
*abandons* -- resets before our response was complete, opens beyond our
concurrency limit after acknowledging it, or opens with a malformed or
oversized header block -- is marked with its number.  When more than
``limit`` of the last ``window`` streams opened are marked, the guard trips
and the protocol closes the connection with GOAWAY ENHANCE_YOUR_CALM.

With the defaults (100 of the last 200) a browser that cancels every request
it has in flight (at most ``max_concurrent_streams``, 100 by default) stays
under the limit, while an attacker who resets nearly everything is stopped
after about a hundred streams, whatever its rate.
"""

from __future__ import annotations

from bisect import bisect_left, insort

__all__ = ("ResetGuard",)


class ResetGuard:
    """Counts abandoned streams among the last ``window`` the peer opened."""

    __slots__ = ("_limit", "_marks", "_opened", "_window")

    def __init__(self, limit: int, window: int) -> None:
        """:param limit: how many abandoned streams the window may hold.

        :param window: how many of the latest opened streams are looked at.
        """
        self._limit = limit
        self._window = window
        self._opened = 0
        # Sequence numbers of abandoned streams inside the window, sorted.
        self._marks: list[int] = []

    def opened(self) -> int:
        """Count a stream the peer opened.

        :return: its sequence number, for :meth:`abandoned`.
        """
        seq = self._opened
        self._opened = seq + 1
        return seq

    def abandoned(self, seq: int) -> bool:
        """Mark a stream as abandoned by the peer.

        :param seq: the number :meth:`opened` gave the stream.
        :return: whether the limit is now exceeded.
        """
        marks = self._marks
        insort(marks, seq)
        horizon = self._opened - self._window
        if marks[0] < horizon:
            del marks[: bisect_left(marks, horizon)]
        return len(marks) > self._limit
