"""Final response heads a server wrote, known again by an equal header block.

A server answers with the same few heads over and over: the same status
and fields, only ``Date`` changing once a second.  For a plain exchange (an
HTTP/1.1 keep-alive request other than HEAD or CONNECT, on a connection
that is not closing) planning a final head (the status, the framing
fields) and checking and writing it depend on the header block and
``end_stream`` alone; so each server implementation keeps the bytes it
wrote for a block in a :class:`ResponseMemo`, and writes them again when
an equal block comes.  What depends on the connection's state (whether the
exchange is plain, the body writer, the body's account) is decided for
every response; a block that was refused is never kept.

Blocks are compared by value (the application builds a new list for every
response), and only blocks of ``(bytes, bytes)`` tuples are kept, so that
equality is plain bytes equality.  The memo is bounded: when full it is
emptied and fills again with the heads in use.
"""

from __future__ import annotations

from hcore._types import Headers
from hcore.protocols.http1._headers import OutgoingBody

__all__ = ("KnownHead", "ResponseMemo", "plain_method")

#: Request methods whose answers are planned differently (no body for
#: HEAD, a tunnel for CONNECT).
_NOT_PLAIN = frozenset({b"HEAD", b"CONNECT"})

#: A header block as a memo key.
Key = tuple[tuple[bytes, bytes], ...]


def plain_method(method: bytes) -> bool:
    """Whether the answer to a request with ``method`` may come from a memo."""
    return method not in _NOT_PLAIN


class KnownHead:
    """What one final response head planned and wrote to.

    :param head: the head's bytes (status line, fields, blank line).
    :param body: its body's framing as planned (only the framing and the
        length are kept).
    """

    __slots__ = ("framing", "head", "length")

    def __init__(self, head: bytes, body: OutgoingBody) -> None:
        self.head = head
        self.framing = body.framing
        self.length = body.remaining

    def new_body(self) -> OutgoingBody:
        """A fresh account of the body, as planning the head would give."""
        return OutgoingBody(self.framing, self.length)


class ResponseMemo:
    """The heads one server implementation wrote, by header block.

    :param max_size: the most heads kept for each ``end_stream``.
    """

    __slots__ = ("_max_size", "_tables")

    def __init__(self, max_size: int = 64) -> None:
        self._max_size = max_size
        # One table for each end_stream (False, True).
        self._tables: tuple[dict[Key, KnownHead], dict[Key, KnownHead]] = ({}, {})

    def __len__(self) -> int:
        return len(self._tables[0]) + len(self._tables[1])

    def recall(self, headers: Headers, end_stream: bool) -> KnownHead | None:
        """The head kept for a block equal to ``headers``, if any."""
        try:
            return self._tables[end_stream].get(tuple(headers))
        except TypeError:
            # A field that cannot be hashed (a list, a bytearray): never kept.
            return None

    def keep(self, headers: Headers, end_stream: bool, known: KnownHead) -> None:
        """Keep what a plain exchange's block planned and wrote to."""
        key = tuple(headers)
        for field in key:
            if type(field) is not tuple or len(field) != 2:
                return
            name, value = field
            if type(name) is not bytes or type(value) is not bytes:
                return
        table = self._tables[end_stream]
        if len(table) >= self._max_size:
            table.clear()
        table[key] = known
