"""HTTP/1.1 on h11: sans-IO client and server protocols and their factories.

Registered in :data:`hcore.protocols.default_registry` as ``"h11"``; the
client and server parsed by httptools (llhttp), :class:`HTTPToolsClientFactory`
and :class:`HTTPToolsServerFactory`, as ``"httptools"`` when httptools is
installed.
Requests and responses use the HTTP/2 pseudo-headers like every other
version; exchanges are numbered as streams 1, 3, 5, ...
"""

from hcore.protocols.http1._client import H11ClientProtocol as H11ClientProtocol
from hcore.protocols.http1._factories import HTTP1ClientFactory as HTTP1ClientFactory
from hcore.protocols.http1._factories import HTTP1ServerFactory as HTTP1ServerFactory
from hcore.protocols.http1._factories import (
    HTTPToolsClientFactory as HTTPToolsClientFactory,
)
from hcore.protocols.http1._factories import (
    HTTPToolsServerFactory as HTTPToolsServerFactory,
)
from hcore.protocols.http1._protocol import H11Protocol as H11Protocol
from hcore.protocols.http1._server import H11ServerProtocol as H11ServerProtocol

__all__ = (
    "H11ClientProtocol",
    "H11Protocol",
    "H11ServerProtocol",
    "HTTP1ClientFactory",
    "HTTP1ServerFactory",
    "HTTPToolsClientFactory",
    "HTTPToolsServerFactory",
)
