"""Factories that make an HTTP/2 protocol for each new TCP connection.

Both factories take their limits as keywords (named once, in
:class:`~hcore.protocols.http2._options.ClientSettings` and
:class:`~hcore.protocols.http2._options.ServerSettings`), check them once
and hand them to every protocol they make.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar, Unpack

from hcore._errors import LocalProtocolError
from hcore.protocols._factories import HTTPOverTCPFactory
from hcore.protocols.http2._client import H2ClientProtocol
from hcore.protocols.http2._options import ClientSettings, Options, ServerSettings
from hcore.protocols.http2._server import H2ServerProtocol

__all__ = ("HTTP2ClientFactory", "HTTP2ServerFactory")

_ALPN = ("h2",)
_Settings = TypeVar("_Settings", ClientSettings, ServerSettings)


class _H2Factory(HTTPOverTCPFactory, Generic[_Settings]):
    """What the client and server factories share (limits documented on each)."""

    def __init__(self, settings: _Settings) -> None:
        # Checked once here, so a bad limit fails when the factory is made.
        Options(**settings)
        self._settings: _Settings = settings

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """``("h2",)``."""
        return _ALPN

    def _settings_for(self, alpn_protocol: str | None) -> _Settings:
        # No ALPN id means plain TCP: h2c with prior knowledge (RFC 9113 §3.3).
        if alpn_protocol is not None and alpn_protocol != "h2":
            raise LocalProtocolError(f"HTTP/2 cannot run over ALPN {alpn_protocol!r}")
        return self._settings


class HTTP2ClientFactory(_H2Factory[ClientSettings]):
    """Makes :class:`H2ClientProtocol` s, all with the same limits.

    The limits are checked once, here; see :class:`H2ClientProtocol` for
    their meaning and :class:`~hcore.protocols.http2._options.Options` for
    their defaults.

    :param initial_window_size: per-stream receive window.
    :param connection_window_size: connection receive window.
    :param max_header_list_size: largest response header block accepted.
    :raises ValueError: if a limit is out of range.
    """

    def __init__(self, **settings: Unpack[ClientSettings]) -> None:
        super().__init__(settings)

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> H2ClientProtocol:
        """Make a client protocol, its preface already queued.

        :param tls_version: the TLS version, or ``None`` on plain TCP.
        :param alpn_protocol: ``"h2"``, or ``None`` for prior knowledge.
        :return: the protocol.
        :raises LocalProtocolError: if ``alpn_protocol`` is not ``"h2"``.
        """
        return H2ClientProtocol(**self._settings_for(alpn_protocol))


class HTTP2ServerFactory(_H2Factory[ServerSettings]):
    """Makes :class:`H2ServerProtocol` s, all with the same limits.

    The limits are checked once, here; see :class:`H2ServerProtocol` for
    their meaning and :class:`~hcore.protocols.http2._options.Options` for
    their defaults.

    :param initial_window_size: per-stream receive window.
    :param connection_window_size: connection receive window.
    :param max_header_list_size: largest request header block accepted.
    :param max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS.
    :param enable_connect_protocol: accept RFC 8441 extended CONNECT
        (WebSockets over HTTP/2).
    :param max_rapid_resets: how many streams the client may abandon ...
    :param rapid_reset_window: ... among the last this many it opened.
    :raises ValueError: if a limit is out of range.
    """

    def __init__(self, **settings: Unpack[ServerSettings]) -> None:
        super().__init__(settings)

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> H2ServerProtocol:
        """Make a server protocol, its SETTINGS already queued.

        :param tls_version: the TLS version, or ``None`` on plain TCP.
        :param alpn_protocol: ``"h2"``, or ``None`` for prior knowledge.
        :return: the protocol.
        :raises LocalProtocolError: if ``alpn_protocol`` is not ``"h2"``.
        """
        return H2ServerProtocol(**self._settings_for(alpn_protocol))
