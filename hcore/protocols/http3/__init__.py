"""HTTP/3 on aioquic: sans-IO protocols that take and give QUIC datagrams.

:class:`HTTP3ClientFactory` and :class:`HTTP3ServerFactory` make the
protocols (registered as ``"aioquic"``).  The protocols emit the same events
with the same pseudo-headers as HTTP/1.1 and HTTP/2, and number streams 1, 3,
5, ... too.  :func:`parse_datagram_route` and :func:`build_version_negotiation`
serve a QUIC listener before any connection exists.
"""

from hcore.protocols.http3._client import AioquicClientProtocol as AioquicClientProtocol
from hcore.protocols.http3._factories import HTTP3ClientFactory as HTTP3ClientFactory
from hcore.protocols.http3._factories import HTTP3ServerFactory as HTTP3ServerFactory
from hcore.protocols.http3._protocol import AioquicProtocol as AioquicProtocol
from hcore.protocols.http3._routing import DatagramRoute as DatagramRoute
from hcore.protocols.http3._routing import (
    build_version_negotiation as build_version_negotiation,
)
from hcore.protocols.http3._routing import parse_datagram_route as parse_datagram_route
from hcore.protocols.http3._server import AioquicServerProtocol as AioquicServerProtocol
from hcore.protocols.http3._tls import SessionTicketStore as SessionTicketStore

__all__ = (
    "AioquicClientProtocol",
    "AioquicProtocol",
    "AioquicServerProtocol",
    "DatagramRoute",
    "HTTP3ClientFactory",
    "HTTP3ServerFactory",
    "SessionTicketStore",
    "build_version_negotiation",
    "parse_datagram_route",
)
