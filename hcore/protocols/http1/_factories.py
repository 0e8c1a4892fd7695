"""Factories that make an HTTP/1.1 protocol for each new TCP connection."""

from __future__ import annotations

from collections.abc import Sequence

from hcore._errors import LocalProtocolError
from hcore.protocols._factories import HTTPOverTCPFactory
from hcore.protocols.http1._client import H11ClientProtocol
from hcore.protocols.http1._limits import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_PIPELINED_SIZE,
)
from hcore.protocols.http1._server import H11ServerProtocol

__all__ = ("HTTP1ClientFactory", "HTTP1ServerFactory")

_ALPN = ("http/1.1",)


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise ValueError(f"{name} must be positive, not {value!r}")
    return value


def _check_alpn(alpn_protocol: str | None) -> None:
    if alpn_protocol is not None and alpn_protocol not in _ALPN:
        raise LocalProtocolError(f"HTTP/1.1 cannot speak ALPN {alpn_protocol!r}")


class HTTP1ClientFactory(HTTPOverTCPFactory):
    """Makes an :class:`H11ClientProtocol` for each connection a client opens.

    :param max_header_size: largest response head (status line and fields)
        accepted, in bytes; a larger one ends the connection with
        ``error_code=431``.
    :param max_header_count: most fields accepted in a head or trailers.
    :raises ValueError: if a limit is not positive.
    """

    def __init__(
        self,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
    ) -> None:
        self._max_header_size = _positive("max_header_size", max_header_size)
        self._max_header_count = _positive("max_header_count", max_header_count)

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """``["http/1.1"]``."""
        return list(_ALPN)

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> H11ClientProtocol:
        """Make a client protocol; HTTP/1.1 has no preface, nothing is queued.

        :raises LocalProtocolError: if ``alpn_protocol`` is not ``http/1.1``.
        """
        _check_alpn(alpn_protocol)
        return H11ClientProtocol(
            max_header_size=self._max_header_size,
            max_header_count=self._max_header_count,
        )


class HTTP1ServerFactory(HTTPOverTCPFactory):
    """Makes an :class:`H11ServerProtocol` for each connection a server accepts.

    :param max_header_size: largest request head accepted, in bytes; a
        larger one is answered with 431.
    :param max_header_count: most fields accepted in a head or trailers
        (431 beyond).
    :param max_pipelined_size: most bytes held that a client sent ahead of
        the current exchange (pipelined requests, early tunnel bytes).
    :param scheme: ``:scheme`` given to requests; by default ``"https"``
        when the connection uses TLS and ``"http"`` otherwise.
    :raises ValueError: if a limit is not positive.
    """

    def __init__(
        self,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        max_pipelined_size: int = DEFAULT_MAX_PIPELINED_SIZE,
        scheme: str | None = None,
    ) -> None:
        self._max_header_size = _positive("max_header_size", max_header_size)
        self._max_header_count = _positive("max_header_count", max_header_count)
        self._max_pipelined_size = _positive("max_pipelined_size", max_pipelined_size)
        self._scheme = scheme

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """``["http/1.1"]``."""
        return list(_ALPN)

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> H11ServerProtocol:
        """Make a server protocol for an accepted connection.

        :raises LocalProtocolError: if ``alpn_protocol`` is not ``http/1.1``.
        """
        _check_alpn(alpn_protocol)
        scheme = self._scheme
        if scheme is None:
            scheme = "http" if tls_version is None else "https"
        return H11ServerProtocol(
            scheme=scheme,
            max_header_size=self._max_header_size,
            max_header_count=self._max_header_count,
            max_pipelined_size=self._max_pipelined_size,
        )
