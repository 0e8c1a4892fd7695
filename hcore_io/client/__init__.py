"""A pooled HTTP client: requests and responses, connection pool, client.

:class:`ConnectionPool` keeps connections per origin (HTTP/1.1 reused,
HTTP/2 and HTTP/3 shared by concurrent requests); :class:`Client` adds
timeouts, retries, redirects and shorthands on top of it.
"""

from hcore_io.client._altsvc import AltSvcCache as AltSvcCache
from hcore_io.client._altsvc import parse_alt_svc as parse_alt_svc
from hcore_io.client._client import Client as Client
from hcore_io.client._client import TooManyRedirects as TooManyRedirects
from hcore_io.client._factories import ClientTCPFactory as ClientTCPFactory
from hcore_io.client._lease import PooledConnection as PooledConnection
from hcore_io.client._metrics import ConnectionMetrics as ConnectionMetrics
from hcore_io.client._metrics import ConnectionState as ConnectionState
from hcore_io.client._metrics import PoolMetrics as PoolMetrics
from hcore_io.client._models import URL as URL
from hcore_io.client._models import Origin as Origin
from hcore_io.client._models import Request as Request
from hcore_io.client._models import RequestBody as RequestBody
from hcore_io.client._models import Response as Response
from hcore_io.client._models import ResponseStream as ResponseStream
from hcore_io.client._models import Timeouts as Timeouts
from hcore_io.client._networking import CountingNetworking as CountingNetworking
from hcore_io.client._networking import (
    HappyEyeballsNetworking as HappyEyeballsNetworking,
)
from hcore_io.client._networking import NetworkingWrapper as NetworkingWrapper
from hcore_io.client._networking import Resolver as Resolver
from hcore_io.client._networking import system_resolver as system_resolver
from hcore_io.client._pool import ConnectionPool as ConnectionPool
from hcore_io.client._proxy import ProxyNetworking as ProxyNetworking
from hcore_io.client._sse import EventSource as EventSource
from hcore_io.client._sse import EventSourceError as EventSourceError
from hcore_io.client._sse import EventSourceOptions as EventSourceOptions
from hcore_io.client._websocket import WebSocket as WebSocket
from hcore_io.client._websocket import WebSocketClosed as WebSocketClosed
from hcore_io.client._websocket import WebSocketError as WebSocketError
from hcore_io.client._websocket import WebSocketRejected as WebSocketRejected

__all__ = (
    "URL",
    "AltSvcCache",
    "Client",
    "ClientTCPFactory",
    "ConnectionMetrics",
    "ConnectionPool",
    "ConnectionState",
    "CountingNetworking",
    "EventSource",
    "EventSourceError",
    "EventSourceOptions",
    "HappyEyeballsNetworking",
    "NetworkingWrapper",
    "Origin",
    "PoolMetrics",
    "PooledConnection",
    "ProxyNetworking",
    "Request",
    "RequestBody",
    "Resolver",
    "Response",
    "ResponseStream",
    "Timeouts",
    "TooManyRedirects",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketError",
    "WebSocketRejected",
    "parse_alt_svc",
    "system_resolver",
)
