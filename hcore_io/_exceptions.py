"""The exceptions of the I/O layer: network failures and timeouts.

``OSError``, ``ssl.SSLError`` and AnyIO's errors are translated into these
where they cross into ``hcore_io``'s public API (``raise … from exc``).
"""

from __future__ import annotations

import builtins

from hcore import HCoreError

__all__ = (
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "NetworkError",
    "PoolTimeout",
    "ReadError",
    "ReadTimeout",
    "TimeoutError",
    "WriteError",
    "WriteTimeout",
)


class NetworkError(HCoreError):
    """The network failed under a connection."""


class ConnectError(NetworkError):
    """A connection (or its TLS handshake) could not be set up."""


class ReadError(NetworkError):
    """Reading from a connection failed."""


class WriteError(NetworkError):
    """Writing to a connection failed."""


class ConnectionClosed(NetworkError):
    """The connection was closed, by either side, while it was being used."""


class TimeoutError(HCoreError, builtins.TimeoutError):
    """An operation did not finish in the time it was given."""


class ConnectTimeout(TimeoutError):
    """Connecting took too long."""


class ReadTimeout(TimeoutError):
    """The peer sent nothing for too long."""


class WriteTimeout(TimeoutError):
    """The peer did not take our data for too long."""


class PoolTimeout(TimeoutError):
    """No connection of a pool became free in time."""
