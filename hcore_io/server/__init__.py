"""The server side: ASGI applications over HTTP/1.1, HTTP/2 and HTTP/3.

:class:`ASGIServer` serves an ASGI 3 application on ``http://`` and
``https://`` endpoints (HTTP/3 on the UDP side of every ``https`` one), with
limits, timeouts, graceful shutdown and an access log (logger
``hcore.access``, common log format with the HTTP version).
:class:`ProxyServer` tunnels CONNECT requests over the same three versions;
both are :class:`HTTPServer` s, which a user may subclass for other servers.
"""

from hcore_io.server._base import HTTPServer as HTTPServer
from hcore_io.server._certificates import GeneratedCertificate as GeneratedCertificate
from hcore_io.server._certificates import generate_certificate as generate_certificate
from hcore_io.server._endpoints import Endpoint as Endpoint
from hcore_io.server._endpoints import parse_endpoint as parse_endpoint
from hcore_io.server._exchange import ClientDisconnected as ClientDisconnected
from hcore_io.server._lifespan import LifespanFailure as LifespanFailure
from hcore_io.server._proxy import ProxyServer as ProxyServer
from hcore_io.server._proxy import parse_authority as parse_authority
from hcore_io.server._server import ASGIServer as ASGIServer
from hcore_io.server._types import ASGIApp as ASGIApp
from hcore_io.server._types import Message as Message
from hcore_io.server._types import Receive as Receive
from hcore_io.server._types import Scope as Scope
from hcore_io.server._types import Send as Send

__all__ = (
    "ASGIApp",
    "ASGIServer",
    "ClientDisconnected",
    "Endpoint",
    "GeneratedCertificate",
    "HTTPServer",
    "LifespanFailure",
    "Message",
    "ProxyServer",
    "Receive",
    "Scope",
    "Send",
    "generate_certificate",
    "parse_authority",
    "parse_endpoint",
)
