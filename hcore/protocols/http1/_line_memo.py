"""Bounded memos of parsed head lines, for the h11 direct receive paths.

:func:`split_head` cuts a head out of received bytes into its lines.

A load of similar messages repeats its lines (a client's request line and
``Host``, a server's status line, ``Server`` and ``Content-Type``), so the
direct paths (:mod:`._h11_fast_client`, :mod:`._h11_fast_server`) keep what
parsing a line gave.  A memo holds short lines only and is emptied when
full, so a peer sending ever new lines costs a bounded amount of memory.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ("LINES_KEPT", "LINE_KEPT_SIZE", "LineMemo", "split_head")

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


def split_head(data: bytes) -> tuple[int, list[bytes]] | None:
    """The lines of the head ``data`` starts with, if it holds all of it.

    As ``_h11_fast.head_lines`` reads h11's buffer: the lines split on CRLF
    are h11's lines unless one holds a lone CR or LF, which no line pattern
    matches (so such a head goes to h11, which judges it).

    :return: the head's size (with its blank line) and its lines, or
        ``None`` if its end has not come.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    return end + 4, data[:end].split(b"\r\n")
