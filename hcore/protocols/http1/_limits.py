"""The limits that protect an HTTP/1.1 endpoint from a peer's input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

__all__ = (
    "DEFAULT_MAX_HEADER_COUNT",
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_MAX_PIPELINED_SIZE",
    "HeadLimits",
    "head_limits",
)

#: Default bound on a message head; h11's own default is 16 KiB, but large
#: cookies and tokens are common enough that 64 KiB avoids needless 431s.
DEFAULT_MAX_HEADER_SIZE = 64 * 1024
#: Default bound on the number of fields in a head or trailer block.
DEFAULT_MAX_HEADER_COUNT = 100
#: Default bound on bytes a client sends ahead of the current exchange.
DEFAULT_MAX_PIPELINED_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """Bounds on a received head (or trailer block)."""

    #: Largest head, in bytes.
    max_size: int
    #: Most fields.
    max_count: int

    def check(
        self, first_line: int, fields: Sequence[tuple[bytes, bytes]]
    ) -> str | None:
        """Check a head that h11 parsed.

        h11 bounds a head only while it is incomplete; this applies the same
        bound to one that arrived whole, estimating its size on the wire.

        :param first_line: length of the request or status line's parts.
        :param fields: the received fields.
        :return: what is wrong, or ``None`` when the head is within bounds.
        """
        if len(fields) > self.max_count:
            return f"more than {self.max_count} header fields"
        # ": " and CRLF per field, CRLFs after the first line and the head.
        size = first_line + 4 + 4 * len(fields) + sum(map(len, chain(*fields)))
        if size > self.max_size:
            return f"message head larger than {self.max_size} bytes"
        return None


@lru_cache(maxsize=16)
def head_limits(max_size: int, max_count: int) -> HeadLimits:
    """The limits for these bounds, one object shared by every connection."""
    return HeadLimits(max_size, max_count)
