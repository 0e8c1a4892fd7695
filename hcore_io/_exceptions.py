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
    "ResponseBodyTooLarge",
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


class ResponseBodyTooLarge(ReadError):
    """A response body read whole was larger than the client may buffer.

    Raised by :meth:`~hcore_io.client.Response.aread` (and so by
    :meth:`~hcore_io.client.Client.request` and its shorthands) when the
    body's ``content-length`` (checked before any of it is read) or the
    bytes read so far pass the bound,
    :attr:`~hcore_io.Limits.max_response_body_size` by default.  Before it
    is raised the response's stream is reset (an HTTP/1.1 connection is
    closed rather than reused), so nothing more of the body is taken in;
    the other streams of an HTTP/2 or HTTP/3 connection go on.  A body read
    piece by piece (``async for chunk in response.stream``) is not bounded
    this way: flow control keeps what is held to a window.

    :param message: what happened.
    :param limit: the bound that was passed, in bytes.
    :param content_length: the body's announced length, if that is what
        passed the bound.
    """

    def __init__(
        self, message: str, *, limit: int, content_length: int | None = None
    ) -> None:
        super().__init__(message)
        #: The bound that was passed, in bytes.
        self.limit = limit
        #: The announced ``content-length``, when it passed the bound before
        #: any of the body was read; ``None`` when the body grew past it.
        self.content_length = content_length


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
