"""Bounded memos of parsed head lines, for the h11 direct receive paths.

A load of similar messages repeats its lines (a client's request line and
``Host``, a server's status line, ``Server`` and ``Content-Type``), so the
direct paths (:mod:`._h11_fast_client`, :mod:`._h11_fast_server`) keep what
parsing a line gave.  A memo holds short lines only and is emptied when
full, so a peer sending ever new lines costs a bounded amount of memory.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ("LINES_KEPT", "LINE_KEPT_SIZE", "LineMemo")

_T = TypeVar("_T")

#: Lines kept in each memo; a full memo is emptied and starts again.
LINES_KEPT = 512
#: Longest line kept.
LINE_KEPT_SIZE = 256


class LineMemo(dict[bytes, _T], Generic[_T]):
    """What each line seen before parsed to (``get`` looks one up)."""

    __slots__ = ()

    def keep(self, line: bytes, value: _T) -> None:
        """Remember a short line's parse; empty a full memo first (bounded)."""
        if len(line) > LINE_KEPT_SIZE:
            return
        if len(self) >= LINES_KEPT:
            self.clear()
        self[line] = value
