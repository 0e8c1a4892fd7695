"""Networking backends: how the I/O layer opens and accepts connections.

The interfaces (:class:`ClientNetworking`, :class:`ServerNetworking` and
their parts) say what a backend offers; :class:`SystemNetworking` uses the
operating system's sockets through AnyIO, :class:`EpollNetworking` drives
raw sockets with one epoll per event loop (Linux), :class:`MemoryNetworking`
runs in process for tests and examples; :func:`start_tls` runs a client TLS
handshake over any byte stream.  Every stream is an AnyIO stream and keeps
AnyIO's semantics (``anyio.EndOfStream`` at end of stream,
``anyio.BrokenResourceError`` when the peer is gone); connecting and
listening raise :mod:`hcore_io`'s own errors.
"""

from hcore_io.networking._epoll import EpollNetworking as EpollNetworking
from hcore_io.networking._interfaces import ByteStream as ByteStream
from hcore_io.networking._interfaces import ClientNetworking as ClientNetworking
from hcore_io.networking._interfaces import DatagramStream as DatagramStream
from hcore_io.networking._interfaces import (
    QUICServerNetworking as QUICServerNetworking,
)
from hcore_io.networking._interfaces import QUICStream as QUICStream
from hcore_io.networking._interfaces import ServerNetworking as ServerNetworking
from hcore_io.networking._interfaces import (
    TCPClientNetworking as TCPClientNetworking,
)
from hcore_io.networking._interfaces import (
    TCPServerNetworking as TCPServerNetworking,
)
from hcore_io.networking._interfaces import (
    UDPClientNetworking as UDPClientNetworking,
)
from hcore_io.networking._memory import MemoryNetworking as MemoryNetworking
from hcore_io.networking._system import SystemNetworking as SystemNetworking
from hcore_io.networking._tls import start_tls as start_tls

__all__ = (
    "ByteStream",
    "ClientNetworking",
    "DatagramStream",
    "EpollNetworking",
    "MemoryNetworking",
    "QUICServerNetworking",
    "QUICStream",
    "ServerNetworking",
    "SystemNetworking",
    "TCPClientNetworking",
    "TCPServerNetworking",
    "UDPClientNetworking",
    "start_tls",
)
