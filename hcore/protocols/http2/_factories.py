"""Factories that make an HTTP/2 protocol for each new TCP connection."""

from __future__ import annotations

from collections.abc import Sequence

from hcore._errors import LocalProtocolError
from hcore.protocols._factories import HTTPOverTCPFactory
from hcore.protocols.http2._client import H2ClientProtocol
from hcore.protocols.http2._options import Options
from hcore.protocols.http2._server import H2ServerProtocol

__all__ = ("HTTP2ClientFactory", "HTTP2ServerFactory")

_DEFAULTS = Options()
_ALPN = ("h2",)


def _check_alpn(alpn_protocol: str | None) -> None:
    # No ALPN id means plain TCP: h2c with prior knowledge (RFC 9113 §3.3).
    if alpn_protocol is not None and alpn_protocol != "h2":
        raise LocalProtocolError(f"HTTP/2 cannot run over ALPN {alpn_protocol!r}")


class HTTP2ClientFactory(HTTPOverTCPFactory):
    """Makes :class:`H2ClientProtocol` s, all with the same limits.

    The limits are checked once, here; see :class:`H2ClientProtocol` for
    their meaning.
    """

    def __init__(
        self,
        *,
        initial_window_size: int = _DEFAULTS.initial_window_size,
        connection_window_size: int = _DEFAULTS.connection_window_size,
        max_header_list_size: int = _DEFAULTS.max_header_list_size,
    ) -> None:
        """:param initial_window_size: per-stream receive window.

        :param connection_window_size: connection receive window.
        :param max_header_list_size: largest response header block accepted.
        :raises ValueError: if a limit is out of range.
        """
        self._options = Options(
            initial_window_size=initial_window_size,
            connection_window_size=connection_window_size,
            max_header_list_size=max_header_list_size,
        )

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """``("h2",)``."""
        return _ALPN

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> H2ClientProtocol:
        """Make a client protocol, its preface already queued.

        :param tls_version: the TLS version, or ``None`` on plain TCP.
        :param alpn_protocol: ``"h2"``, or ``None`` for prior knowledge.
        :return: the protocol.
        :raises LocalProtocolError: if ``alpn_protocol`` is not ``"h2"``.
        """
        _check_alpn(alpn_protocol)
        options = self._options
        return H2ClientProtocol(
            initial_window_size=options.initial_window_size,
            connection_window_size=options.connection_window_size,
            max_header_list_size=options.max_header_list_size,
        )


class HTTP2ServerFactory(HTTPOverTCPFactory):
    """Makes :class:`H2ServerProtocol` s, all with the same limits.

    The limits are checked once, here; see :class:`H2ServerProtocol` for
    their meaning.
    """

    def __init__(
        self,
        *,
        initial_window_size: int = _DEFAULTS.initial_window_size,
        connection_window_size: int = _DEFAULTS.connection_window_size,
        max_header_list_size: int = _DEFAULTS.max_header_list_size,
        max_concurrent_streams: int = _DEFAULTS.max_concurrent_streams,
        enable_connect_protocol: bool = _DEFAULTS.enable_connect_protocol,
        max_rapid_resets: int = _DEFAULTS.max_rapid_resets,
        rapid_reset_window: int = _DEFAULTS.rapid_reset_window,
    ) -> None:
        """:param initial_window_size: per-stream receive window.

        :param connection_window_size: connection receive window.
        :param max_header_list_size: largest request header block accepted.
        :param max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS.
        :param enable_connect_protocol: accept RFC 8441 extended CONNECT
            (WebSockets over HTTP/2).
        :param max_rapid_resets: how many streams the client may abandon ...
        :param rapid_reset_window: ... among the last this many it opened.
        :raises ValueError: if a limit is out of range.
        """
        self._options = Options(
            initial_window_size=initial_window_size,
            connection_window_size=connection_window_size,
            max_header_list_size=max_header_list_size,
            max_concurrent_streams=max_concurrent_streams,
            enable_connect_protocol=enable_connect_protocol,
            max_rapid_resets=max_rapid_resets,
            rapid_reset_window=rapid_reset_window,
        )

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """``("h2",)``."""
        return _ALPN

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> H2ServerProtocol:
        """Make a server protocol, its SETTINGS already queued.

        :param tls_version: the TLS version, or ``None`` on plain TCP.
        :param alpn_protocol: ``"h2"``, or ``None`` for prior knowledge.
        :return: the protocol.
        :raises LocalProtocolError: if ``alpn_protocol`` is not ``"h2"``.
        """
        _check_alpn(alpn_protocol)
        options = self._options
        return H2ServerProtocol(
            initial_window_size=options.initial_window_size,
            connection_window_size=options.connection_window_size,
            max_header_list_size=options.max_header_list_size,
            max_concurrent_streams=options.max_concurrent_streams,
            enable_connect_protocol=options.enable_connect_protocol,
            max_rapid_resets=options.max_rapid_resets,
            rapid_reset_window=options.rapid_reset_window,
        )
