"""A client's last request head, planned once for a caller that repeats it.

A client sends the same request over and over (a poller, a benchmark, a
crawler's fixed headers): the pooled client hands the protocol the very
same header block object each time (its pseudo-headers are cached per
method and URL).  Planning a head (the pseudo-headers, ``Host``, the
framing) and checking and writing it depend on the block and
``end_stream`` alone, so each client protocol keeps what its last request
gave, and takes it again when the next request passes the same block
object with the same ``end_stream``.

Identity is safe only for a block nobody can change: a ``tuple`` of
``(bytes, bytes)`` tuples (:func:`repeatable`).  The memo holds the block,
so its identity cannot pass to another object while it is kept; one memo
per connection bounds the memory.  What depends on the connection's state
(whether the direct path applies, the body writer, the body's account) is
decided afresh for every request; a block that was refused is never kept.
"""

from __future__ import annotations

from hcore._types import Headers
from hcore.protocols.http1._headers import Framing, OutgoingBody

__all__ = ("RequestMemo", "repeatable")


class RequestMemo:
    """What one request head (a block and ``end_stream``) planned to.

    :param headers: the block, kept so that its identity stays its own.
    :param end_stream: the request had no body.
    :param method: the request method.
    :param body: the body's framing as planned (``None``: a proposed tunnel);
        only its framing and length are kept.
    """

    __slots__ = (
        "chunked",
        "close",
        "end_stream",
        "fields",
        "framing",
        "head",
        "headers",
        "length",
        "method",
        "target",
        "upgrade",
    )

    def __init__(
        self,
        headers: Headers,
        end_stream: bool,
        method: bytes,
        target: bytes,
        fields: list[tuple[bytes, bytes]],
        body: OutgoingBody | None,
    ) -> None:
        self.headers = headers
        self.end_stream = end_stream
        self.method = method
        self.target = target
        #: The fields to send (read only: shared by every request made
        #: from the memo).
        self.fields = fields
        self.framing: Framing | None = None if body is None else body.framing
        self.length = 0 if body is None else body.remaining
        #: The head's bytes, when the protocol writes it itself (``None``:
        #: it goes through h11's event).
        self.head: bytes | None = None
        #: The head's body is chunked (which body writer it takes).
        self.chunked = False
        #: The request proposes an Upgrade (RFC 9110 §7.8).
        self.upgrade = False
        #: The request says ``Connection: close`` (RFC 9112 §9.6).
        self.close = False

    def matches(self, headers: Headers, end_stream: bool) -> bool:
        """Whether a request passes the same block object and ``end_stream``."""
        return self.headers is headers and self.end_stream == end_stream

    def new_body(self) -> OutgoingBody | None:
        """A fresh account of the body, as planning it would give."""
        framing = self.framing
        if framing is None:
            return None
        return OutgoingBody(framing, self.length)


def repeatable(headers: Headers) -> bool:
    """Whether a block can be known again by its identity.

    Only a ``tuple`` of ``(bytes, bytes)`` tuples: nothing in it can change.
    """
    if type(headers) is not tuple:
        return False
    for field in headers:
        if type(field) is not tuple or len(field) != 2:
            return False
        name, value = field
        if type(name) is not bytes or type(value) is not bytes:
            return False
    return True
