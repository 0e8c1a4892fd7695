"""Sans-IO HTTP protocol interfaces, factories, the registry, and our implementations.

``hcore.protocols.http1`` (on h11), ``.http2`` (on h2) and ``.http3`` (on
aioquic) are registered in :data:`default_registry` as ``"h11"``, ``"h2"``
and ``"aioquic"``; when httptools is installed, an HTTP/1.1 client and
server parsed by llhttp are registered as ``"httptools"`` too (h11 stays the
default).
"""

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

from hcore.protocols._factories import ALPNHTTPFactory as ALPNHTTPFactory
from hcore.protocols._factories import (
    HTTPOverQUICClientFactory as HTTPOverQUICClientFactory,
)
from hcore.protocols._factories import (
    HTTPOverQUICServerFactory as HTTPOverQUICServerFactory,
)
from hcore.protocols._factories import HTTPOverTCPFactory as HTTPOverTCPFactory
from hcore.protocols._protocols import HTTPOverQUICProtocol as HTTPOverQUICProtocol
from hcore.protocols._protocols import HTTPOverTCPProtocol as HTTPOverTCPProtocol
from hcore.protocols._protocols import HTTPProtocol as HTTPProtocol
from hcore.protocols._protocols import OverQUICProtocol as OverQUICProtocol
from hcore.protocols._protocols import OverTCPProtocol as OverTCPProtocol
from hcore.protocols._registry import ProtocolImplementation as ProtocolImplementation
from hcore.protocols._registry import ProtocolRegistry as ProtocolRegistry
from hcore.protocols._registry import default_registry as default_registry

__all__ = (
    "ALPNHTTPFactory",
    "HTTPOverQUICClientFactory",
    "HTTPOverQUICProtocol",
    "HTTPOverQUICServerFactory",
    "HTTPOverTCPFactory",
    "HTTPOverTCPProtocol",
    "HTTPProtocol",
    "OverQUICProtocol",
    "OverTCPProtocol",
    "ProtocolImplementation",
    "ProtocolRegistry",
    "default_registry",
)


def _lazy(module: str, name: str) -> Callable[[], Any]:
    # Built-in implementations are imported on first use, so that importing
    # hcore.protocols does not pay for h2 and aioquic when only HTTP/1.1 runs.
    # Keywords (the factory's limits) are passed on, as to a factory class.
    def make(**options: Any) -> Any:
        return getattr(importlib.import_module(module), name)(**options)

    make.__qualname__ = f"{module}.{name}"
    return make


for _version, _name, _module, _prefix in (
    ("1.1", "h11", "hcore.protocols.http1", "HTTP1"),
    ("2", "h2", "hcore.protocols.http2", "HTTP2"),
    ("3", "aioquic", "hcore.protocols.http3", "HTTP3"),
):
    default_registry.register(
        _version,
        _name,
        client=_lazy(_module, f"{_prefix}ClientFactory"),
        server=_lazy(_module, f"{_prefix}ServerFactory"),
    )

if importlib.util.find_spec("httptools") is not None:
    # The llhttp-parsed HTTP/1.1 client and server, registered like any
    # user's would be.
    default_registry.register(
        "1.1",
        "httptools",
        client=_lazy("hcore.protocols.http1", "HTTPToolsClientFactory"),
        server=_lazy("hcore.protocols.http1", "HTTPToolsServerFactory"),
    )
