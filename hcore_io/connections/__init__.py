"""HTTP connections over networking: HTTPConnection, openers and listeners.

An :class:`HTTPConnection` drives one sans-IO protocol (any HTTP version)
over one network stream; many tasks can share it, each with an
:class:`HTTPStream` of its own.  Openers (:class:`HTTPOverTCPOpener`,
:class:`HTTPOverQUICOpener`) connect to servers; listeners
(:class:`HTTPOverTCPListener`, :class:`HTTPOverQUICListener`,
:class:`HTTPMultiListener`) accept connections and serve each with a handler.
"""

from hcore_io.connections._connection import (
    DEFAULT_MAX_BUFFERED_DATA as DEFAULT_MAX_BUFFERED_DATA,
)
from hcore_io.connections._connection import HTTPConnection as HTTPConnection
from hcore_io.connections._listeners import Handler as Handler
from hcore_io.connections._listeners import HTTPListener as HTTPListener
from hcore_io.connections._listeners import HTTPMultiListener as HTTPMultiListener
from hcore_io.connections._listeners import (
    HTTPOverQUICListener as HTTPOverQUICListener,
)
from hcore_io.connections._listeners import HTTPOverTCPListener as HTTPOverTCPListener
from hcore_io.connections._openers import HTTPOpener as HTTPOpener
from hcore_io.connections._openers import HTTPOverQUICOpener as HTTPOverQUICOpener
from hcore_io.connections._openers import HTTPOverTCPOpener as HTTPOverTCPOpener
from hcore_io.connections._prior_knowledge import HTTP2_PREFACE as HTTP2_PREFACE
from hcore_io.connections._prior_knowledge import (
    PriorKnowledgeHTTPFactory as PriorKnowledgeHTTPFactory,
)
from hcore_io.connections._stream import HTTPStream as HTTPStream
from hcore_io.connections._stream import StreamReset as StreamReset

__all__ = (
    "DEFAULT_MAX_BUFFERED_DATA",
    "HTTP2_PREFACE",
    "HTTPConnection",
    "HTTPListener",
    "HTTPMultiListener",
    "HTTPOpener",
    "HTTPOverQUICListener",
    "HTTPOverQUICOpener",
    "HTTPOverTCPListener",
    "HTTPOverTCPOpener",
    "HTTPStream",
    "Handler",
    "PriorKnowledgeHTTPFactory",
    "StreamReset",
)
