"""The exceptions raised by the sans-IO core."""

from __future__ import annotations

__all__ = ("HCoreError", "LocalProtocolError", "RemoteProtocolError")


class HCoreError(Exception):
    """Base class of every exception that :mod:`hcore` raises."""


class LocalProtocolError(HCoreError):
    """The caller used a protocol in a way the protocol does not allow.

    Raised at once by the ``submit_*`` method that was misused (headers on a
    closed stream, data before headers, a malformed header block); the
    protocol's state is unchanged by the failed call.
    """


class RemoteProtocolError(HCoreError):
    """The peer broke the protocol.

    The receiving path never raises this: a peer's error becomes a
    :class:`~hcore.events.ConnectionTerminated` or
    :class:`~hcore.events.StreamResetReceived` event.  It is available for
    layers above that want to turn such an event into an exception.
    """
