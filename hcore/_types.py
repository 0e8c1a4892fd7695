"""Plain data types shared by every layer: headers, addresses and datagrams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypeAlias

__all__ = ("Address", "Datagram", "Headers")

#: HTTP headers as ``(name, value)`` byte pairs, names in lower case.
#:
#: Requests and responses carry the HTTP/2 pseudo-headers (``:method``,
#: ``:scheme``, ``:authority``, ``:path``, ``:status``) first, whatever the
#: HTTP version on the wire.
Headers: TypeAlias = Sequence[tuple[bytes, bytes]]

#: A network address: host (an IP address or a name) and port.
Address: TypeAlias = tuple[str, int]


class Datagram(NamedTuple):
    """One UDP datagram and the address it came from or goes to."""

    #: The payload.
    data: bytes
    #: The peer's address: the source of a received datagram, the
    #: destination of one to send.
    address: Address
