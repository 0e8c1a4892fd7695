"""hcore_io: the I/O layer that pairs hcore's sans-IO protocols with networking.

:mod:`hcore_io.networking` opens and accepts connections (real sockets or
in-process pipes); :mod:`hcore_io.connections` runs HTTP over them
(connections, openers, listeners); the exceptions below are what the I/O
layer raises in place of ``OSError``, ``ssl.SSLError`` and AnyIO's errors;
:class:`Limits` collects every bound the servers and clients keep.
"""

from hcore_io._exceptions import ConnectError as ConnectError
from hcore_io._exceptions import ConnectionClosed as ConnectionClosed
from hcore_io._exceptions import ConnectTimeout as ConnectTimeout
from hcore_io._exceptions import NetworkError as NetworkError
from hcore_io._exceptions import PoolTimeout as PoolTimeout
from hcore_io._exceptions import ReadError as ReadError
from hcore_io._exceptions import ReadTimeout as ReadTimeout
from hcore_io._exceptions import ResponseBodyTooLarge as ResponseBodyTooLarge
from hcore_io._exceptions import TimeoutError as TimeoutError
from hcore_io._exceptions import WriteError as WriteError
from hcore_io._exceptions import WriteTimeout as WriteTimeout
from hcore_io._limits import Limits as Limits
from hcore_io.connections import HTTPConnection as HTTPConnection
from hcore_io.connections import HTTPListener as HTTPListener
from hcore_io.connections import HTTPMultiListener as HTTPMultiListener
from hcore_io.connections import HTTPOpener as HTTPOpener
from hcore_io.connections import HTTPOverQUICListener as HTTPOverQUICListener
from hcore_io.connections import HTTPOverQUICOpener as HTTPOverQUICOpener
from hcore_io.connections import HTTPOverTCPListener as HTTPOverTCPListener
from hcore_io.connections import HTTPOverTCPOpener as HTTPOverTCPOpener
from hcore_io.connections import HTTPStream as HTTPStream
from hcore_io.connections import PriorKnowledgeHTTPFactory as PriorKnowledgeHTTPFactory
from hcore_io.connections import StreamReset as StreamReset
from hcore_io.networking import ByteStream as ByteStream
from hcore_io.networking import ClientNetworking as ClientNetworking
from hcore_io.networking import DatagramStream as DatagramStream
from hcore_io.networking import EpollNetworking as EpollNetworking
from hcore_io.networking import MemoryNetworking as MemoryNetworking
from hcore_io.networking import QUICServerNetworking as QUICServerNetworking
from hcore_io.networking import QUICStream as QUICStream
from hcore_io.networking import ServerNetworking as ServerNetworking
from hcore_io.networking import SystemNetworking as SystemNetworking
from hcore_io.networking import TCPClientNetworking as TCPClientNetworking
from hcore_io.networking import TCPServerNetworking as TCPServerNetworking
from hcore_io.networking import UDPClientNetworking as UDPClientNetworking

__all__ = (
    "ByteStream",
    "ClientNetworking",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "DatagramStream",
    "EpollNetworking",
    "HTTPConnection",
    "HTTPListener",
    "HTTPMultiListener",
    "HTTPOpener",
    "HTTPOverQUICListener",
    "HTTPOverQUICOpener",
    "HTTPOverTCPListener",
    "HTTPOverTCPOpener",
    "HTTPStream",
    "Limits",
    "MemoryNetworking",
    "NetworkError",
    "PoolTimeout",
    "PriorKnowledgeHTTPFactory",
    "QUICServerNetworking",
    "QUICStream",
    "ReadError",
    "ReadTimeout",
    "ResponseBodyTooLarge",
    "ServerNetworking",
    "StreamReset",
    "SystemNetworking",
    "TCPClientNetworking",
    "TCPServerNetworking",
    "TimeoutError",
    "UDPClientNetworking",
    "WriteError",
    "WriteTimeout",
)
