"""hcore: sans-IO HTTP/1.1, HTTP/2 and HTTP/3 for clients, servers and proxies.

This package holds the shared data types; :mod:`hcore.events` the events and
:mod:`hcore.protocols` the protocols.  Nothing here does I/O: the protocols
are driven by method calls and hand back bytes, datagrams and events.
:mod:`hcore_io` pairs them with real networking.
"""

from hcore._error_codes import HTTP1_ERROR_CODES as HTTP1_ERROR_CODES
from hcore._error_codes import HTTP2_ERROR_CODES as HTTP2_ERROR_CODES
from hcore._error_codes import HTTP3_ERROR_CODES as HTTP3_ERROR_CODES
from hcore._error_codes import HTTPErrorCodes as HTTPErrorCodes
from hcore._errors import HCoreError as HCoreError
from hcore._errors import LocalProtocolError as LocalProtocolError
from hcore._errors import RemoteProtocolError as RemoteProtocolError
from hcore._tls import ClientTLSConfig as ClientTLSConfig
from hcore._tls import ServerTLSConfig as ServerTLSConfig
from hcore._types import Address as Address
from hcore._types import Datagram as Datagram
from hcore._types import Headers as Headers

__all__ = (
    "HTTP1_ERROR_CODES",
    "HTTP2_ERROR_CODES",
    "HTTP3_ERROR_CODES",
    "Address",
    "ClientTLSConfig",
    "Datagram",
    "HCoreError",
    "HTTPErrorCodes",
    "Headers",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ServerTLSConfig",
)
